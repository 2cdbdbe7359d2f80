"""Reading the host's player, and what the host is told when syncing cannot go on.

A host whose link is dead (revoked, or unlinked) is told once to run /link again; listeners
keep what they play meanwhile, and the status shows the host as unreadable until a read works.
Any other failure (a timeout, a 5xx, our own budget saying no) just skips this round's read:
an unreadable host is not an idle one, and nobody is paused for it. A 429 marked
QUOTA_EXCEEDED (on any call of the guild) is told to the host at most every
`QUOTA_NOTICE_EVERY_S`, naming when calls resume.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from core.errors import BudgetRefused, NotLinked, QuotaHeld, RateLimited, TokenRevoked
from core.spotify.quota import CallPriority
from core.sync.clock import Clock
from core.sync.ports import PlayerClient, observation
from core.sync.state import PlayerState
from core.timetext import TimedText
from core.tracks import TrackInfo

log = logging.getLogger(__name__)

HOST_RELINK = "Your Spotify link expired — run /link again to host"
HOST_UNLINKED = "Your Spotify isn't linked any more — run /link again to host"
QUOTA_NOTICE_EVERY_S = 600.0
QUOTA_NOTICE = (
    "Spotify says this bot has used up its API quota for now, so syncing is paused. "
    "It resumes by itself at {time}, when Spotify allows it again."
)


class HostReader:
    """One guild's host reads; `track` and `unreadable` are what the status shows."""

    def __init__(
        self,
        guild_id: int,
        *,
        client: PlayerClient,
        clock: Clock,
        call_timeout_s: float,
        calls: Counter[str],
        rate_limited: Callable[[RateLimited], None],
        tell: Callable[[int, str], None],
        status_changed: Callable[[], None],
    ) -> None:
        self.guild_id = guild_id
        self._client = client
        self._clock = clock
        self._timeout = call_timeout_s
        self._calls = calls
        self._rate_limited = rate_limited
        self._tell = tell
        self._status_changed = status_changed
        self.track: TrackInfo | None = None
        self.unreadable = False
        self.told = False  # the host was told their link is dead
        self._quota_told_at = float("-inf")

    def new_host(self) -> None:
        """A hand-over: the new host has not been told anything."""
        self.told = False

    def quota_exceeded(self, host_id: int, error: RateLimited) -> None:
        """Spotify holds every call for hours: tell the host (not again for a while)."""
        now = self._clock.now()
        if now - self._quota_told_at < QUOTA_NOTICE_EVERY_S:
            return
        self._quota_told_at = now
        log.warning("guild %s: Spotify quota exceeded; telling the host", self.guild_id)
        self._tell(host_id, quota_notice(error))

    async def read(
        self, host_id: int, priority: CallPriority = CallPriority.COMMAND
    ) -> PlayerState | None:
        """The host's player; None when it could not be read."""
        requested = self._clock.now()
        try:
            async with asyncio.timeout(self._timeout):
                self._calls["host_read"] += 1
                playback = await self._client.playback(host_id, priority=priority)
        except RateLimited as error:
            self._rate_limited(error)
            return None
        except BudgetRefused:  # our own budget: nothing was sent, no hold; skip this beat
            return None
        except (TokenRevoked, NotLinked) as error:
            # Only they can fix it (/link): tell them once; listeners keep what they play.
            self.unreadable = True
            if not self.told:
                self.told = True
                self._status_changed()
                unlinked = isinstance(error, NotLinked)
                self._tell(host_id, HOST_UNLINKED if unlinked else HOST_RELINK)
            return None
        except Exception as error:
            log.warning("guild %s: host read failed: %r", self.guild_id, error)
            return None
        if self.unreadable:
            self.unreadable = False
            self._status_changed()
        self.told = False
        self.track = playback.track if playback is not None else None
        return observation(playback, requested, self._clock.now())


def quota_notice(error: RateLimited) -> TimedText:
    """QUOTA_NOTICE naming when calls resume (the bot shows it in the host's own zone)."""
    # Wall time: it is shown to a person, not used to time anything here.
    wall = error.resume_at if isinstance(error, QuotaHeld) else time.time() + error.retry_after
    return TimedText(QUOTA_NOTICE, wall)

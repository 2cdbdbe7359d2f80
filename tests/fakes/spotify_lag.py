"""The fake Spotify's player timing: command-to-read lag, 202 while waking, start-up delay.

Sources (shared/REALITY.md): Web API reference (Start/Resume Playback, Seek: "the order of
execution is not guaranteed"), spotify/web-api issues #784, #1203, #1245, #1258 (a GET
/me/player right after a command still shows the old state), #636, #640 (202 Accepted while
a device wakes up), #1073 (audio starts after a device-dependent delay; progress_ms runs
ahead of what is heard).

    fake.lag.read_lag = 0.3        # seconds GET /me/player and currently-playing show the old state
    fake.lag.start_delay = 0.15    # seconds from play/resume until audio (and position) moves
    fake.lag.wake_delay = 0.5      # extra start-up for a device that was not the active one
    fake.lag.accept_202 = True     # a command that wakes a device answers 202, not 204
    fake.lag.off()                 # the idealised player of old, for one test
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from tests.fakes.spotify_catalog import FakeAccount, FakePlayer


class PlayerLag:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.read_lag = 0.3
        self.start_delay = 0.15
        self.wake_delay = 0.5
        self.accept_202 = True
        self._stale: dict[str, tuple[FakePlayer, float]] = {}

    def off(self) -> None:
        self.read_lag = self.start_delay = self.wake_delay = 0.0
        self.accept_202 = False

    def before_command(self, account: FakeAccount, device_id: str | None = None) -> bool:
        """Call before a command changes the player: keep what reads show for `read_lag`,
        and give the player its start-up delay. Returns whether the command wakes a device."""
        player = account.player
        waking = device_id is not None and device_id != player.device_id
        player.start_delay = self.start_delay + (self.wake_delay if waking else 0.0)
        if self.read_lag > 0:
            now = self.clock()
            stale = self._stale.get(account.id)
            if stale is None or stale[1] <= now:
                frozen = copy.copy(player)
                frozen.queue = list(player.queue)
                frozen.start_delay = 0.0
                self._stale[account.id] = (frozen, now + self.read_lag)
            else:
                self._stale[account.id] = (stale[0], now + self.read_lag)
        return waking

    def status(self, waking: bool) -> int:
        return 202 if waking and self.accept_202 else 204

    def view(self, account: FakeAccount) -> FakePlayer:
        """The player a read shows: the pre-command state while the lag lasts."""
        stale = self._stale.get(account.id)
        if stale is not None and stale[1] > self.clock():
            return stale[0]
        return account.player

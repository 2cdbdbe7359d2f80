"""The listener read path: which listeners a round reads, and the reads themselves.

Listeners we know nothing about (joined, resynced, restarted, reopened Spotify, a command that
timed out) are read before they are commanded, whatever the host did and outside the drift
budget. When the host did not change, a little of the budget goes to drift checks of the
others (`pick_drift_checks`), at the rate the quota's plan allows (`HostSignal`); listeners whose
Discord presence shows another track are read at once, past their settle window.

Each read is timed in the Spotify client's worker thread (`Playback.requested_at/answered_at`),
and that round trip is what a listener's latency is learnt from (core/sync/clock.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace

from core.errors import BudgetRefused, RateLimited
from core.spotify.quota import CallPriority
from core.sync.changes import HostChange
from core.sync.clock import Clock
from core.sync.host_signal import HostSignal
from core.sync.listener import Listener
from core.sync.planner import SyncConfig, needs_read, read_due_at
from core.sync.ports import PlayerClient, observation
from core.sync.schedule import Budget, DriftCandidate, DriftConfig, pick_drift_checks
from core.sync.state import PlayerState
from storage.records import ListenerStatus

log = logging.getLogger(__name__)


class ListenerReads:
    """One guild's listener reads over the members `Listeners` keeps (the same dict)."""

    def __init__(
        self,
        guild_id: int,
        *,
        members: dict[int, Listener],
        client: PlayerClient,
        clock: Clock,
        sync: SyncConfig,
        drift: DriftConfig,
        call_timeout_s: float,
        calls: Counter[str],
        rate_limited: Callable[[RateLimited], None],
    ) -> None:
        self.guild_id = guild_id
        self._members = members
        self._client = client
        self._clock = clock
        self._sync = sync
        self._drift = drift
        self._timeout = call_timeout_s
        self._calls = calls
        self._rate_limited = rate_limited
        self._budget = Budget.per_minute(drift.calls_per_minute, drift.burst, clock.now())

    async def for_round(
        self, host: PlayerState, change: HostChange, signal: HostSignal, wait_s: float
    ) -> dict[int, PlayerState]:
        """First reads of unknown listeners (always), plus drift checks when nothing changed."""
        unknown, drift = self.to_read(self._clock.now())
        picked: list[int] = []
        rate = signal.drift_rate_per_s()  # None: no governor, keep the configured rate
        if rate is not None and rate > 0:
            self._budget = replace(self._budget, rate_per_s=rate)  # the quota's share
        if not change and (rate is None or rate > 0):
            picked, self._budget = pick_drift_checks(
                drift, host, self._clock.now(), self._budget, self._drift
            )
        # Listeners whose Discord presence shows another track are read now, outside the
        # drift budget (the budget's checks may be minutes apart): they may have wandered off.
        if signal.allows(CallPriority.DRIFT):
            candidates = {c.user_id for c in drift} - set(picked)
            now = self._clock.now()
            # A read within the settle window after our command proves nothing: wait for it.
            picked += signal.suspects(lambda uid: uid in candidates and self.settled_at(uid) <= now)
        # Someone unknown is read before being commanded: that read is part of the command.
        priorities = dict.fromkeys(unknown, CallPriority.COMMAND)
        priorities.update(dict.fromkeys(picked, CallPriority.DRIFT))
        return await self.read(priorities, wait_s)

    def to_read(self, now: float) -> tuple[list[int], list[DriftCandidate]]:
        """Listeners to read before planning (nothing known of them: outside the drift
        budget), and the candidates for this round's budgeted drift checks."""
        members = self._members
        unknown = [
            uid
            for uid, m in members.items()
            if not m.busy and needs_read(m.view(None), now, self._sync)
        ]
        drift = [
            DriftCandidate(uid, m.last_checked, m.last_commanded, True)
            for uid, m in members.items()
            if m.state.status in (ListenerStatus.ATTACHED, ListenerStatus.ERROR)
            and m.retry_at <= now
            and not m.busy
            and uid not in unknown
        ]
        return unknown, drift

    def expected_tracks(self, host_track: str | None) -> dict[int, str | None]:
        """The track each following listener should show: what we last sent them (a belief),
        else the host's; only listeners we follow (not those who left or must relink)."""
        return {
            uid: (m.belief.track_id if m.belief is not None else host_track)
            for uid, m in self._members.items()
            if m.state.status in (ListenerStatus.ATTACHED, ListenerStatus.ERROR)
        }

    def settled_at(self, uid: int) -> float:
        """When a read of this listener can be trusted over our last command to them."""
        member = self._members.get(uid)
        return member.commanded_at + self._sync.settle_s if member is not None else 0.0

    def next_read_at(self) -> float | None:
        """The soonest time a listener not read yet becomes due for their first read."""
        due = [
            at
            for m in self._members.values()
            if not m.busy and (at := read_due_at(m.view(None), self._sync)) is not None
        ]
        return min(due, default=None)

    async def read(self, uids: Mapping[int, CallPriority], wait_s: float) -> dict[int, PlayerState]:
        """Read these listeners' players at once, each at its quota priority; a read later
        than `wait_s` is dropped."""
        if not uids:
            return {}
        reads = {uid: asyncio.create_task(self._read(uid, pri)) for uid, pri in uids.items()}
        _, late = await asyncio.wait(reads.values(), timeout=wait_s)
        for task in late:
            task.cancel()  # a read that late is stale anyway; the round goes on without it
        return {
            uid: seen
            for uid, task in reads.items()
            if task not in late and (seen := task.result()) is not None
        }

    async def _read(self, uid: int, priority: CallPriority) -> PlayerState | None:
        requested = self._clock.now()
        try:
            async with asyncio.timeout(self._timeout):
                self._calls["listener_read"] += 1
                playback = await self._client.playback(uid, priority=priority)
        except RateLimited as error:
            self._rate_limited(error)
            return None
        except BudgetRefused:  # our own budget: nothing was sent, no hold; skip this beat
            return None
        except Exception as error:
            log.info("guild %s: reading listener %s failed: %r", self.guild_id, uid, error)
            return None
        answered = self._clock.now()
        listener = self._members.get(uid)
        if listener is not None:
            listener.last_checked = answered
            if playback is not None:
                # The client's own stamps, taken in its worker thread around the request: the
                # outer times include the wait for a thread, which with hundreds of listeners
                # is most of it and would make every position aim too far ahead.
                listener.latency = listener.latency.observe(
                    playback.answered_at - playback.requested_at
                )
        return observation(playback, requested, answered)

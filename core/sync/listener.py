"""One listener as the engine knows them, and the position a command carries.

`Listener` is the engine's working memory about one listener; `PositionAt` computes a play or
seek position at the moment the Spotify client sends the request (see core/sync/listeners.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.sync.clock import Clock, Latency, landing_position
from core.sync.failures import NO_DEVICE_BACKOFF_S
from core.sync.lease import GuildLease
from core.sync.planner import ListenerView
from core.sync.state import PlayerState
from storage.records import ListenerState, ListenerStatus

# Our own writes remembered per listener: a read racing a few quick status changes of ours may
# show any of them. Status changes are rare (a failure, a recovery), so a few suffice.
OWN_WRITES = 8


class StaleCommand(Exception):
    """A command withheld at the moment of sending: timed out already, or the lease is gone."""


@dataclass
class Listener:
    """The engine's working memory about one listener (the stored part is `state`)."""

    state: ListenerState
    belief: PlayerState | None = None
    latency: Latency = field(default_factory=Latency)
    device_id: str | None = None  # picked for the command in progress only
    retry_at: float = 0.0
    failures: int = 0  # transient failures in a row
    last_checked: float = 0.0
    last_commanded: float = 0.0  # when our last accepted command landed
    commanded_at: float = 0.0  # when our last command was sent, accepted or not
    told: set[ListenerStatus] = field(default_factory=set)
    no_device_looks: int = 0  # looks for a device since they were NO_DEVICE (backs off)
    inflight: asyncio.Task[None] | None = None  # a command still out (the round moved on)
    # The stored state as last read, and our own last writes: a stored state that is neither
    # was written by someone else (see `written_by_someone_else`).
    seen: ListenerState | None = None
    written: deque[ListenerState] = field(default_factory=lambda: deque(maxlen=OWN_WRITES))

    def wrote(self, state: ListenerState) -> None:
        """We are storing `state` (a status change of ours)."""
        self.written.append(state)

    def written_by_someone_else(self, stored: ListenerState) -> bool:
        """Whether `stored` (as just read) is news from another writer: it changed since the
        last read and is none of our recent writes. A read may still show one of our earlier
        writes (it raced a later one, or a late write landed after it): that is no news.
        Compared by value, so no two machines' clocks need agree."""
        if stored == self.seen:
            return False
        self.seen = stored
        return stored != self.state and stored not in self.written

    @property
    def busy(self) -> bool:
        return self.inflight is not None and not self.inflight.done()

    @property
    def backing_off(self) -> bool:
        """Waiting after transient failures (an outage, a hang) rather than for the user."""
        return self.failures > 0

    def view(self, observed: PlayerState | None) -> ListenerView:
        return ListenerView(
            user_id=self.state.user_id,
            status=self.state.status,
            belief=self.belief,
            observed=observed,
            latency=self.latency,
            device_id=self.device_id,
            retry_at=self.retry_at,
            commanded_at=self.commanded_at,
        )

    def forget(self) -> None:
        """Back to knowing nothing (resync, lease regained): the next round reads them first.
        What they were told stays told."""
        self.belief = None
        self.retry_at = 0.0
        self.failures = 0
        self.last_checked = 0.0
        self.no_device_looks = 0

    def look_for_device_later(self, now: float) -> None:
        """NO_DEVICE: look again after 15 s, then 60 s, then every 120 s."""
        steps = NO_DEVICE_BACKOFF_S
        self.retry_at = now + steps[min(self.no_device_looks, len(steps) - 1)]
        self.no_device_looks += 1


class PositionAt:
    """The position for a command, computed by the client right before the request is sent.

    Called in the client's worker thread: it reads only immutable values and the clock. It
    raises `StaleCommand` instead when the command's deadline has passed or the lease is no
    longer valid, so such a command never leaves."""

    def __init__(
        self,
        host: PlayerState,
        latency: Latency,
        clock: Clock,
        deadline: float,
        lease: GuildLease,
        *,
        lead_ms: int = 0,
    ) -> None:
        self._host, self._latency, self._clock = host, latency, clock
        self._deadline, self._lease = deadline, lease
        self._lead_ms = lead_ms
        self.sent: tuple[float, int] | None = None  # (when, position) once computed

    def __call__(self) -> int:
        now = self._check()
        position = landing_position(self._host, now, self._latency, self._lead_ms)
        self.sent = (now, position)
        return position

    @property
    def one_way_s(self) -> float:
        """The one-way latency the position allows for (benchmarks attribute skew with it)."""
        return self._latency.one_way_s

    @property
    def lead_ms(self) -> int:
        return self._lead_ms

    def guard(self) -> None:
        """For a command without a position (pause): the same fencing, right before sending."""
        self.sent = (self._check(), 0)  # when it left still times the round trip

    def _check(self) -> float:
        now = self._clock.now()
        if now >= self._deadline:
            raise StaleCommand("timed out before it was sent")
        if not self._lease.valid():
            raise StaleCommand("the sync lease is no longer ours")
        return now


# A probe counts as due this much of `probe_interval_s` after the last one (see `probe`).
PROBE_EARLY = 0.8


class BackOffs:
    """Listeners waiting after transient failures (an outage, a hang): one of them probes every
    `probe_interval_s`, and the first command that gets through ends everyone's wait."""

    def __init__(self, members: Mapping[int, Listener]) -> None:
        self._members = members
        self._probe_at = 0.0

    def end(self) -> bool:
        """Cut every transient back-off short; whether any was running."""
        ended = False
        for listener in self._members.values():
            if listener.backing_off and listener.retry_at > 0:
                listener.retry_at = 0.0
                ended = True
        return ended

    def probe(self, now: float, interval_s: float) -> None:
        """While listeners back off, let the one due soonest try now, every `interval_s`."""
        waiting = [m for m in self._members.values() if m.backing_off and m.retry_at > now]
        if waiting and now >= self._probe_at:
            # Rounds come every poll interval counted from their start, but `now` is read after
            # the host read, whose time varies: a probe due a full interval later fell a few ms
            # after the next round about half the time and waited a round more (2 s, not 1 s,
            # from an outage's end to everyone back in sync).
            self._probe_at = now + interval_s * PROBE_EARLY
            min(waiting, key=lambda m: m.retry_at).retry_at = now

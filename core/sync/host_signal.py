"""The host's Discord presence as the engine's push signal, and reads spent by the quota.

With a quota governor the engine no longer reads the host every round. `HostSignal` decides
each round where the host's state comes from (`look`):
- a presence change of the host (it woke the engine): read the host once to confirm when the
  plan allows it, else act on the presence alone (track id, position, pause = gone);
- a read that is due (just after the predicted end of the track, or the plan's safety poll /
  paced poll), at that read's priority, if the governor allows it;
- otherwise the last state extrapolated (a round woken by a join, a leave or a resync).
`next_delay` schedules the next due read from the budget (core/sync/schedule.py).

A presence is trusted for a host only once one with Spotify arrived for them: a host who does
not share Spotify on Discord (or a bot without the presences intent) is polled at the paced
rate. A read that shows them playing while Discord says nothing marks them as not sharing.

Listeners' presences are a free hint too: one showing a track that is neither the host's nor
the one we sent them (they picked something else) wakes the engine to read them at once
(`suspects`), instead of waiting minutes for the budget's next drift check. A listener's
presence that agrees, or says nothing (paused, closed: Discord cannot tell), costs nothing.

Without a governor the signal is off and the engine keeps its old fixed cadence.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.presence import Presence, PresenceBoard
from core.spotify.quota import CallPriority, QuotaStatus
from core.sync.schedule import (
    NextRead,
    PollConfig,
    QuotaConfig,
    RatePressure,
    SpendPlan,
    next_read,
    spend_plan,
)
from core.sync.state import PlayerState

log = logging.getLogger(__name__)

# A read showing the host playing this long after their last presence said "nothing": Discord
# is not telling us about them (presence arrives 0.3-2 s late, REALITY.md).
NOT_SHARING_AFTER_S = 5.0


class Governor(Protocol):
    """The slice of the quota governor (core/spotify/quota.py) the engine uses."""

    def allows(self, priority: CallPriority) -> bool: ...
    def pressure(self) -> float: ...
    def status(self) -> QuotaStatus: ...


@dataclass(frozen=True)
class Look:
    """Where this round's host state comes from: a read at `read` priority (with the presence
    `hint` to fall back on), or `state` as it stands (None: nothing known)."""

    read: CallPriority | None = None
    hint: PlayerState | None = None
    state: PlayerState | None = None
    presence: bool = False  # the hint is a presence change just received


def presence_state(
    presence: Presence, previous: PlayerState | None, at: float
) -> PlayerState | None:
    """A presence as a player state at local time `at` (when it was received).

    No Spotify activity means paused, stopped or offline (Discord does not tell them apart):
    the previous track held where it would be; None when there was nothing before either.
    """
    listening = presence.listening
    if listening is None:
        if previous is None or not previous.has_track:
            return None
        return PlayerState(
            previous.track_id,
            previous.position_at(at),
            False,
            at,
            previous.duration_ms,
            previous.device_id,
        )
    return PlayerState(
        track_id=listening.track_id,
        position_ms=max(0, listening.position_ms or 0),
        is_playing=True,
        at=at,
        duration_ms=listening.duration_ms or 0,
        device_id=previous.device_id if previous is not None else None,
    )


def agrees(known: PlayerState, seen: PlayerState, tolerance_ms: int) -> bool:
    """The presence says nothing new: same track, same play state, position within reach."""
    if known.track_id != seen.track_id or known.is_playing != seen.is_playing:
        return False
    if not seen.is_playing:
        return True
    return abs(known.position_at(seen.at) - seen.position_ms) <= tolerance_ms


def _key(host: PlayerState | None) -> tuple[str | None, bool, float] | None:
    """What a planned read depends on: track, play state, and when the track started."""
    if host is None:
        return None
    origin = host.at - host.position_ms / 1000 if host.is_playing else host.position_ms / 1000
    return (host.track_id, host.is_playing, origin)


def _same_key(a: tuple[str | None, bool, float] | None, b: object) -> bool:
    if a is None or not isinstance(b, tuple):
        return a is None and b is None
    return a[:2] == b[:2] and abs(a[2] - b[2]) < 0.5


class HostSignal:
    def __init__(
        self,
        board: PresenceBoard | None,
        governor: Governor | None,
        *,
        wake: Callable[[], None],
        poll: PollConfig,
        quota: QuotaConfig,
        tolerance_ms: int = 1000,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._board = board
        self._governor = governor
        self._wake = wake
        self._poll = poll
        self._quota = quota
        self._tolerance_ms = tolerance_ms
        self._clock = clock
        self._monotonic = monotonic
        self._host_id: int | None = None
        self._pending: Presence | None = None
        self._shares: bool | None = None  # the host's presence carries their Spotify
        self._due = NextRead(0.0, CallPriority.COMMAND)
        self._due_at = 0.0
        self._due_for: object = None
        self._due_presence = False  # the host state `_due_at` was set for
        self._read = False  # this round read the host
        self._recheck_at = math.inf
        self._unsubscribe: Callable[[], None] | None = None
        self.last_plan: SpendPlan | None = None
        self._expected: dict[int, str | None] = {}  # listener -> the track they should show
        self._suspects: set[int] = set()

    @property
    def active(self) -> bool:
        """Scheduling by budget and presence (a governor was given)."""
        return self._governor is not None

    @property
    def presence(self) -> bool:
        """The host's changes reach us through Discord."""
        board = self._board
        return board is not None and board.available and self._shares is True

    def follow(self, host_id: int) -> None:
        """Listen to this host's presence (the session's host may change)."""
        if host_id == self._host_id:
            return
        self._host_id, self._pending, self._shares = host_id, None, None
        self._due_at = 0.0
        if self._board is not None and self._unsubscribe is None:
            self._unsubscribe = self._board.subscribe(self._on_presence)
        latest = self._board.get(host_id) if self._board is not None else None
        if latest is not None and latest.listening is not None:
            self._shares = True

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def expect(self, tracks: dict[int, str | None]) -> None:
        """The track each listener should be playing (the host's, or the one we sent them)."""
        self._expected = tracks

    def suspects(self, ready: Callable[[int], bool]) -> set[int]:
        """Listeners whose presence shows a track they should not be playing, and whom it is
        `ready` to read now (once each); the others stay suspected until it is."""
        self._suspects &= self._expected.keys()
        found = {uid for uid in self._suspects if ready(uid)}
        self._suspects -= found
        return found

    @property
    def suspected(self) -> set[int]:
        return set(self._suspects)

    def _on_presence(self, presence: Presence) -> None:
        if presence.user_id != self._host_id:
            self._on_listener(presence)
            return
        if presence.listening is not None:
            self._shares = True
        self._pending = presence
        self._wake()

    def _on_listener(self, presence: Presence) -> None:
        if presence.user_id not in self._expected or presence.listening is None:
            return
        expected = self._expected[presence.user_id]
        if expected is None or presence.listening.track_id == expected:
            # (An older presence, from before our last command, may have raised suspicion.)
            self._suspects.discard(presence.user_id)
        else:
            self._suspects.add(presence.user_id)
            self._wake()

    def _local(self, presence: Presence) -> float:
        """The presence's arrival on the engine's clock (it is kept on the monotonic one)."""
        return self._clock() - max(0.0, self._monotonic() - presence.received_at)

    def _take(self, previous: PlayerState | None) -> tuple[bool, PlayerState | None]:
        """(a presence change arrived, it as a state) for the pending presence, if any."""
        presence, self._pending = self._pending, None
        if presence is None or not self.presence:
            return False, None
        return True, presence_state(presence, previous, self._local(presence))

    def allows(self, priority: CallPriority) -> bool:
        return self._governor is None or self._governor.allows(priority)

    def plan(self) -> SpendPlan:
        governor = self._governor
        assert governor is not None
        self.last_plan = spend_plan(governor.pressure(), governor.status().limit, self._quota)
        return self.last_plan

    # -- one round ---------------------------------------------------------------------------

    def look(self, host: PlayerState | None, now: float) -> Look:
        look = self._look(host, now)
        self._read = look.read is not None
        return look

    def _look(self, host: PlayerState | None, now: float) -> Look:
        if not self.active:
            return Look(read=CallPriority.COMMAND)
        plan = self.plan()
        changed, seen = self._take(host)
        if changed:
            if host is not None and seen is not None and agrees(host, seen, self._tolerance_ms):
                return Look(state=host.moved_to(now))  # nothing new (we acted on a read first)
            if plan.confirm and self.allows(CallPriority.COMMAND):
                return Look(read=CallPriority.COMMAND, hint=seen, presence=True)
            return Look(state=seen)
        if now >= self._recheck_at and self.allows(CallPriority.COMMAND):
            return Look(read=CallPriority.COMMAND, hint=host.moved_to(now) if host else None)
        if host is None and self.allows(CallPriority.COMMAND):
            return Look(read=CallPriority.COMMAND)  # first round: the host must be known
        if now >= self._due_at - 0.01 and self.allows(self._due.priority):
            return Look(read=self._due.priority, hint=host.moved_to(now) if host else None)
        return Look(state=host.moved_to(now) if host is not None else None)

    def settle(self, look: Look, read: PlayerState | None, now: float) -> PlayerState | None:
        """This round's host state from the read (None: it failed) and the presence hint."""
        self._recheck_at = math.inf
        if read is None:
            return look.hint
        self._learn(read, now)
        hint = look.hint
        if hint is not None and look.presence and not agrees(read, hint, self._tolerance_ms):
            # The read may predate the change (Spotify's read lag): act on the presence, and
            # read once more shortly; that read wins.
            self._recheck_at = now + self._quota.confirm_wait_s
            return hint
        return read

    def _learn(self, read: PlayerState, now: float) -> None:
        board, host_id = self._board, self._host_id
        if board is None or not board.available or host_id is None or not read.is_playing:
            return
        latest = board.get(host_id)
        silent = latest is None or latest.listening is None
        told_at = self._local(latest) if latest is not None else -math.inf
        if silent and now - told_at > NOT_SHARING_AFTER_S and self._shares is not False:
            log.info("host %s plays on Spotify but Discord shows no presence: polling", host_id)
            self._shares = False

    def held(self, host: PlayerState | None) -> PlayerState | None:
        """While no Spotify call may go out: the host as the latest presence shows them, or
        None when there is nothing new."""
        _, seen = self._take(host)
        if seen is None:
            return None
        if host is not None and agrees(host, seen, self._tolerance_ms):
            return None
        return seen

    def next_delay(self, host: PlayerState | None, started: float, pressure: RatePressure) -> float:
        plan = self.last_plan or self.plan()
        key, presence = _key(host), self.presence
        if (
            self._read
            or not _same_key(key, self._due_for)
            or presence != self._due_presence
            or self._due_at <= started
        ):
            # A round that neither read nor saw the host change (a join, the lease renewal)
            # keeps the read it had planned: rescheduling would put it off again and again.
            due = next_read(host, started, plan, presence=presence, config=self._poll)
            self._due = NextRead(due.delay_s * pressure.factor(started), due.priority)
            self._due_at, self._due_for = started + self._due.delay_s, key
            self._due_presence = presence
        delay = min(self._due_at - started, self._recheck_at - started)
        return max(self._poll.min_s, delay, pressure.wait_s(started))

    def drift_rate_per_s(self) -> float | None:
        """Listener reads a second the plan allows (None: no governor, keep the old budget)."""
        if not self.active:
            return None
        if not self.allows(CallPriority.DRIFT):
            return 0.0
        plan = self.last_plan or self.plan()
        return plan.drift_per_h / 3600

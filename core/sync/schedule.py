"""When to look again: the host poll cadence, rate-limit back-off and listener drift checks.

All pure: the engine asks `next_poll_delay` after each round and sleeps that long, keeps a
`RatePressure` value that 429 answers raise, and spends a per-session `Budget` of listener
reads on the drift checks `pick_drift_checks` selects.

Under the account's quota (issue #10) the cadence follows the budget instead: `spend_plan`
turns the quota governor's pressure into a `SpendPlan` (how often to poll a host without
presence, how slow the safety poll of a host with presence, how many drift checks an hour, in
steps that degrade as pressure rises), and `next_read` says when and at what priority to read
the host next: just after the predicted end of the track, else the plan's poll.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from core.spotify.quota import CallPriority
from core.sync.state import PlayerState


@dataclass(frozen=True)
class PollConfig:
    interval_s: float = 1.0  # while the host plays (Settings: sync poll interval)
    paused_s: float = 3.0  # resume shows up within this; the issue allows 3-5 s
    idle_s: float = 10.0  # nothing playing at all
    end_margin_s: float = 0.1  # poll this long after the predicted end of the track
    follow_s: float = 0.25  # then this often until the next track shows up ...
    follow_window_s: float = 3.0  # ... for at most this long after the predicted end
    min_s: float = 0.05


@dataclass(frozen=True)
class RatePressure:
    """App-wide 429 state. Each 429 outside a running hold doubles the poll intervals (up to
    2**MAX_LEVEL); every CALM_S without one halves them again; no call at all before `until`
    (Retry-After)."""

    level: int = 0
    until: float = 0.0
    last_hit: float = 0.0

    MAX_LEVEL = 3
    CALM_S = 60.0

    def hit(self, now: float, retry_after: float) -> RatePressure:
        # Every call made during one round reports the same hold: a 429 inside a hold that is
        # still running is the same event and does not slow us down once more.
        raise_by = 0 if now < self.until else 1
        return RatePressure(
            level=min(self.current_level(now) + raise_by, self.MAX_LEVEL),
            until=max(self.until, now + max(0.0, retry_after)),
            last_hit=now,
        )

    def current_level(self, now: float) -> int:
        if self.level == 0:
            return 0
        calm_periods = int(max(0.0, now - self.last_hit) // self.CALM_S)
        return max(0, self.level - calm_periods)

    def factor(self, now: float) -> float:
        return float(2 ** self.current_level(now))

    def wait_s(self, now: float) -> float:
        return max(0.0, self.until - now)


def next_poll_delay(
    host: PlayerState | None,
    now: float,
    config: PollConfig = PollConfig(),
    pressure: RatePressure = RatePressure(),
) -> float:
    """Seconds until the next host poll, given the latest host state."""
    if host is None or not host.has_track:
        delay = config.idle_s
    elif not host.is_playing:
        delay = config.paused_s
    else:
        delay = _playing_delay(host, now, config)
    delay *= pressure.factor(now)
    return max(config.min_s, delay, pressure.wait_s(now))


def _playing_delay(host: PlayerState, now: float, config: PollConfig) -> float:
    if not host.duration_ms:
        return config.interval_s
    # Unclamped: where the track should end by the clock, even if the host has not moved on.
    end_at = host.at + (host.duration_ms - host.position_ms) / 1000
    first_look = end_at + config.end_margin_s
    if now < first_look:
        return min(config.interval_s, first_look - now)
    if now < end_at + config.follow_window_s:
        return config.follow_s  # the track should have changed: catch the change promptly
    return config.interval_s


def host_idle_expired(host_active_at: float, now: float, timeout_s: float) -> bool:
    """The session ends when the host has not played anything for `timeout_s`."""
    return timeout_s > 0 and now - host_active_at >= timeout_s


# -- Drift checks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftConfig:
    interval_s: float = 15.0  # read each attached listener about this often while playing
    paused_interval_s: float = 60.0  # and this often while the host is paused
    settle_s: float = 2.0  # never within this long of our last command to them
    end_quiet_s: float = 3.0  # nor this close to the end of the track (positions in flux)
    calls_per_minute: float = 20.0  # per-session budget of listener reads
    burst: int = 5


@dataclass(frozen=True)
class Budget:
    """A token bucket: `rate_per_s` calls, at most `capacity` saved up."""

    rate_per_s: float
    capacity: float
    tokens: float
    at: float

    @classmethod
    def per_minute(cls, calls: float, burst: int, now: float) -> Budget:
        return cls(rate_per_s=calls / 60, capacity=float(burst), tokens=float(burst), at=now)

    def refilled(self, now: float) -> Budget:
        gained = max(0.0, now - self.at) * self.rate_per_s
        return replace(self, tokens=min(self.capacity, self.tokens + gained), at=max(now, self.at))

    def take(self, now: float, wanted: int) -> tuple[int, Budget]:
        """Grant up to `wanted` whole calls; return how many and the remaining budget."""
        bucket = self.refilled(now)
        granted = max(0, min(wanted, int(bucket.tokens)))
        return granted, replace(bucket, tokens=bucket.tokens - granted)


@dataclass(frozen=True)
class DriftCandidate:
    user_id: int
    last_checked: float = 0.0  # local time of our last read of their player; 0: never
    last_commanded: float = 0.0  # local time of our last accepted command to them; 0: never
    known: bool = True  # False: no belief (joined, restarted): read them first


def pick_drift_checks(
    candidates: Iterable[DriftCandidate],
    host: PlayerState,
    now: float,
    budget: Budget,
    config: DriftConfig = DriftConfig(),
) -> tuple[list[int], Budget]:
    """Which listeners to read this round (unknown first, then the longest unchecked)."""
    remaining = host.remaining_at(now)
    if host.is_playing and remaining is not None and remaining < config.end_quiet_s:
        return [], budget
    interval = config.interval_s if host.is_playing else config.paused_interval_s
    due = [
        c
        for c in candidates
        if now - c.last_commanded >= config.settle_s
        and (not c.known or now - c.last_checked >= interval)
    ]
    if not due:
        return [], budget
    due.sort(key=lambda c: (c.known, c.last_checked, c.user_id))
    granted, budget = budget.take(now, len(due))
    return [c.user_id for c in due[:granted]], budget


# -- Spending the account's quota (issue #10) -------------------------------------------------


class Mode(StrEnum):
    """Steps of degradation as the account's quota runs low."""

    FULL = "full"
    FEWER_DRIFT_CHECKS = "fewer drift checks"
    SLOW_SAFETY = "slow safety polls"
    PRESENCE_ONLY = "presence only"


@dataclass(frozen=True)
class QuotaConfig:
    night_s: float = 4 * 3600.0  # what is left is spread over a game night from now
    reserve: float = 0.1  # share of the limit kept for commands (the governor's reserve)
    poll_share: float = 0.5  # without presence: share of the pace spent on host polls
    safety_share: float = 0.02  # with presence: share of the pace for safety polls ...
    drift_share: float = 0.02  # ... and for drift checks
    min_poll_s: float = 2.0  # never poll faster than the original app did
    max_poll_s: float = 120.0
    min_safety_s: float = 120.0
    max_safety_s: float = 1800.0
    confirm_wait_s: float = 1.0  # a read that contradicts a presence: read again this late
    # Pressure (governor: 0 fresh .. 1 at the reserve) at which each step starts.
    steps: tuple[tuple[float, Mode], ...] = (
        (0.9, Mode.PRESENCE_ONLY),
        (0.75, Mode.SLOW_SAFETY),
        (0.5, Mode.FEWER_DRIFT_CHECKS),
    )


@dataclass(frozen=True)
class SpendPlan:
    mode: Mode
    pace_per_h: float  # calls an hour this session may spend, by the budget
    poll_s: float  # host poll without presence
    safety_s: float  # host safety poll with presence (inf: none)
    drift_per_h: float  # listener reads for drift checks
    confirm: bool  # read the host to confirm a presence change


def mode_for(pressure: float, config: QuotaConfig = QuotaConfig()) -> Mode:
    for at, mode in config.steps:
        if pressure >= at:
            return mode
    return Mode.FULL


def spend_plan(pressure: float, limit: int, config: QuotaConfig = QuotaConfig()) -> SpendPlan:
    """The session's schedule for the governor's `pressure` and account `limit`.

    The pace is what is left of the usable budget spread over a night from now, so it shrinks
    as calls are spent: the account never runs dry, however long the night.
    """
    mode = mode_for(pressure, config)
    left = max(0.0, 1.0 - pressure) * limit * (1 - config.reserve)
    pace = left / (config.night_s / 3600)
    poll = _clamp(3600 / max(pace * config.poll_share, 1e-9), config.min_poll_s, config.max_poll_s)
    safety = _clamp(
        3600 / max(pace * config.safety_share, 1e-9), config.min_safety_s, config.max_safety_s
    )
    drift = pace * config.drift_share
    match mode:
        case Mode.FULL:
            pass
        case Mode.FEWER_DRIFT_CHECKS:
            drift /= 3
        case Mode.SLOW_SAFETY:
            drift = 0.0
            safety = min(config.max_safety_s, safety * 3)
            poll = min(config.max_poll_s, poll * 2)
        case Mode.PRESENCE_ONLY:
            drift = 0.0
            safety = math.inf
            poll = config.max_poll_s
    return SpendPlan(mode, pace, poll, safety, drift, confirm=mode is not Mode.PRESENCE_ONLY)


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


@dataclass(frozen=True)
class NextRead:
    delay_s: float
    priority: CallPriority


def next_read(
    host: PlayerState | None,
    now: float,
    plan: SpendPlan,
    *,
    presence: bool,
    config: PollConfig = PollConfig(),
) -> NextRead:
    """When to read the host next, and at which priority.

    With presence the host's changes arrive by themselves: only the end of the track (which
    presence reports late) and a slow safety poll are read. Without it the plan's poll.
    """
    regular = plan.safety_s if presence else plan.poll_s
    if host is None or not host.has_track:
        return NextRead(regular if presence else max(config.idle_s, regular), CallPriority.SAFETY)
    if not host.is_playing:
        return NextRead(regular if presence else max(config.paused_s, regular), CallPriority.SAFETY)
    if not host.duration_ms:
        return NextRead(regular, CallPriority.SAFETY)
    end_at = host.at + (host.duration_ms - host.position_ms) / 1000
    first_look = end_at + config.end_margin_s
    if now < first_look:
        until_end = first_look - now
        if until_end <= regular:
            return NextRead(max(config.min_s, until_end), CallPriority.END_OF_TRACK)
        return NextRead(regular, CallPriority.SAFETY)
    if now < end_at + config.follow_window_s:
        return NextRead(config.follow_s, CallPriority.END_OF_TRACK)
    return NextRead(regular, CallPriority.SAFETY)

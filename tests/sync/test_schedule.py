"""Poll cadence, rate-limit pressure, idle timeout and the drift-check budget."""

from __future__ import annotations

import pytest

from core.sync.schedule import (
    Budget,
    DriftCandidate,
    PollConfig,
    RatePressure,
    host_idle_expired,
    next_poll_delay,
    pick_drift_checks,
)
from core.sync.state import PlayerState

A = "A" * 22
NOW = 1_000.0


def playing(remaining_s: float, dur: int = 200_000, at: float = NOW) -> PlayerState:
    return PlayerState(A, dur - round(remaining_s * 1000), True, at, dur)


HIT = RatePressure().hit(NOW - 1, retry_after=0)  # one 429 a second ago, Retry-After over

ROWS: list[tuple[str, PlayerState | None, RatePressure, float]] = [
    ("no state yet", None, RatePressure(), 10.0),
    ("nothing playing", PlayerState.idle(NOW), RatePressure(), 10.0),
    ("paused", PlayerState(A, 5_000, False, NOW, 200_000), RatePressure(), 3.0),
    ("playing mid-track", playing(100), RatePressure(), 1.0),
    ("end in 0.6 s: poll just after", playing(0.6), RatePressure(), 0.7),
    ("end in 0.9 s", playing(0.9), RatePressure(), 1.0),
    ("end in 1.5 s: not yet", playing(1.5), RatePressure(), 1.0),
    ("end in 0.01 s", playing(0.01), RatePressure(), 0.11),
    # the host was read 0.5 s ago with 0.3 s left: the end is 0.2 s behind us
    ("just past the end: follow", playing(0.3, at=NOW - 0.5), RatePressure(), 0.25),
    ("2.9 s past the end: follow", playing(0, at=NOW - 2.9), RatePressure(), 0.25),
    ("long past the end: normal", playing(0, at=NOW - 5), RatePressure(), 1.0),
    ("unknown duration", PlayerState(A, 5_000, True, NOW, 0), RatePressure(), 1.0),
    ("one 429: twice as slow", playing(100), HIT, 2.0),
    ("429 while paused", PlayerState(A, 5_000, False, NOW, 200_000), HIT, 6.0),
    ("Retry-After wins", playing(100), RatePressure().hit(NOW, retry_after=30), 30.0),
    ("three 429s", playing(100), HIT.hit(NOW, 0).hit(NOW, 0), 8.0),
    ("capped at 2**3", playing(100), HIT.hit(NOW, 0).hit(NOW, 0).hit(NOW, 0), 8.0),
    (
        "one Retry-After seen by every listener: once",
        playing(100),
        RatePressure().hit(NOW - 2, 0.5).hit(NOW - 2, 0.5).hit(NOW - 1.9, 0.4),
        2.0,
    ),
    ("a 429 after the hold: twice", playing(100), RatePressure().hit(NOW - 5, 1).hit(NOW, 0), 4.0),
    # two 429s a minute ago (in order: the second after the first one's hold)
    ("calm for a minute", playing(100), RatePressure().hit(NOW - 62, 0).hit(NOW - 61, 0), 2.0),
    ("calm for long", playing(100), RatePressure().hit(NOW - 600, 0), 1.0),
]


@pytest.mark.parametrize(
    ("host", "pressure", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_next_poll_delay(host: PlayerState | None, pressure: RatePressure, expected: float) -> None:
    assert next_poll_delay(host, NOW, PollConfig(), pressure) == pytest.approx(expected)


def test_poll_config_is_honoured() -> None:
    fast = PollConfig(interval_s=0.5, paused_s=2, idle_s=5, end_margin_s=0.05)
    assert next_poll_delay(playing(100), NOW, fast) == 0.5
    assert next_poll_delay(playing(0.2), NOW, fast) == pytest.approx(0.25)
    assert next_poll_delay(None, NOW, fast) == 5


@pytest.mark.parametrize(
    ("active_at", "timeout", "expired"),
    [(NOW - 100, 600, False), (NOW - 600, 600, True), (NOW - 10_000, 0, False)],
)
def test_host_idle(active_at: float, timeout: float, expired: bool) -> None:
    assert host_idle_expired(active_at, NOW, timeout) is expired


def test_budget_refills_and_caps() -> None:
    budget = Budget.per_minute(12, burst=3, now=NOW)
    granted, budget = budget.take(NOW, 5)
    assert granted == 3
    granted, budget = budget.take(NOW + 4, 5)  # 12/min = one per 5 s
    assert granted == 0
    granted, budget = budget.take(NOW + 5, 5)
    assert granted == 1
    granted, _ = budget.take(NOW + 3_600, 10)
    assert granted == 3


def c(uid: int, checked: float = 0, commanded: float = 0, known: bool = True) -> DriftCandidate:
    return DriftCandidate(uid, checked, commanded, known)


DRIFT_ROWS: list[tuple[str, list[DriftCandidate], PlayerState, list[int]]] = [
    ("never checked", [c(1), c(2)], playing(100), [1, 2]),
    ("checked recently", [c(1, NOW - 5), c(2, NOW - 20)], playing(100), [2]),
    ("just commanded", [c(1, commanded=NOW - 1), c(2, commanded=NOW - 3)], playing(100), [2]),
    (
        "unknown first",
        [c(1, NOW - 100), c(2, known=False), c(3, NOW - 200)],
        playing(100),
        [2, 3, 1],
    ),
    ("near the end: quiet", [c(1)], playing(2), []),
    ("paused host: slower", [c(1, NOW - 30), c(2, NOW - 70)], PlayerState(A, 1, False, NOW), [2]),
    ("idle host", [c(1, NOW - 70)], PlayerState.idle(NOW), [1]),
    (
        "over budget: oldest first",
        [c(i, NOW - 100 + i) for i in range(1, 9)],
        playing(100),
        [1, 2, 3, 4, 5],
    ),
]


@pytest.mark.parametrize(
    ("candidates", "host", "expected"), [r[1:] for r in DRIFT_ROWS], ids=[r[0] for r in DRIFT_ROWS]
)
def test_pick_drift_checks(
    candidates: list[DriftCandidate], host: PlayerState, expected: list[int]
) -> None:
    budget = Budget.per_minute(20, burst=5, now=NOW)
    picked, after = pick_drift_checks(candidates, host, NOW, budget)
    assert picked == expected
    assert after.tokens == pytest.approx(5 - len(expected))

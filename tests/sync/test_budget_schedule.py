"""The quota-driven schedule: pressure steps, the paced poll, reads around the track's end."""

from __future__ import annotations

import math

from core.spotify.quota import CallPriority
from core.sync.schedule import Mode, next_read, spend_plan
from core.sync.state import PlayerState

A = "A" * 22
NOW = 1_000.0


def test_pressure_degrades_in_steps() -> None:
    plans = [spend_plan(p, 2500) for p in (0.0, 0.6, 0.8, 0.95)]
    assert [p.mode for p in plans] == [
        Mode.FULL,
        Mode.FEWER_DRIFT_CHECKS,
        Mode.SLOW_SAFETY,
        Mode.PRESENCE_ONLY,
    ]
    drift = [p.drift_per_h for p in plans]
    assert drift[0] > drift[1] > drift[2] == drift[3] == 0
    safety = [p.safety_s for p in plans]
    assert safety[0] <= safety[1] < safety[2] < safety[3] == math.inf
    assert [p.confirm for p in plans] == [True, True, True, False]


def test_the_paced_poll_keeps_a_night_inside_the_default_budget() -> None:
    fresh = spend_plan(0.0, 2500)
    assert fresh.pace_per_h <= 600  # a 4-hour night spends at most what the budget has
    assert 3600 / fresh.poll_s <= 0.5 * fresh.pace_per_h + 1  # polls take their share only
    # The pace is what is left over a night from now: it shrinks as the budget is spent.
    assert spend_plan(0.5, 2500).pace_per_h < fresh.pace_per_h


def test_reads_just_after_the_end_of_the_track_else_the_safety_poll() -> None:
    plan = spend_plan(0.0, 2500)
    near_end = PlayerState(A, 200_000 - 5_000, True, NOW, 200_000)
    read = next_read(near_end, NOW, plan, presence=True)
    assert read.priority is CallPriority.END_OF_TRACK and 5.0 < read.delay_s < 5.3
    mid = PlayerState(A, 10_000, True, NOW, 400_000)
    read = next_read(mid, NOW, plan, presence=True)
    assert read == type(read)(plan.safety_s, CallPriority.SAFETY)
    assert next_read(mid, NOW, plan, presence=False).delay_s == plan.poll_s

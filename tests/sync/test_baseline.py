"""The benchmark baseline's policy, so the baseline row measures what the original did."""

from __future__ import annotations

import pytest

from core.sync.state import PlayerState
from tests.bench.baseline_loop import Step, decide

A, B = "A" * 22, "B" * 22
PLAYING_A = PlayerState(A, 50_000, True, 0.0)


@pytest.mark.parametrize(
    ("last", "host", "expected"),
    [
        (None, PLAYING_A, Step.RESTART),
        (PLAYING_A, PlayerState(A, 90_000, True, 2.0), None),  # seeks are not followed
        (PLAYING_A, PlayerState(A, 50_000, False, 2.0), Step.PAUSE),  # pauses are
        (PlayerState(A, 50_000, False, 0.0), PlayerState(A, 50_000, True, 2.0), Step.RESTART),
        (PLAYING_A, PlayerState(B, 9_000, True, 2.0), Step.RESTART),  # always from 0
        (PLAYING_A, PlayerState.idle(2.0), None),
    ],
)
def test_decide(last: PlayerState | None, host: PlayerState, expected: Step | None) -> None:
    assert decide(last, host) == expected

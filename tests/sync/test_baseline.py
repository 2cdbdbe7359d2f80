"""The benchmark baseline's policy, so the baseline row measures what the original did."""

from __future__ import annotations

import pytest

from core.sync.planner import Play
from core.sync.state import PlayerState
from tests.bench.baseline_loop import decide

A, B = "A" * 22, "B" * 22


@pytest.mark.parametrize(
    ("last", "host", "expected"),
    [
        (None, PlayerState(A, 50_000, True, 0.0), Play(f"spotify:track:{A}", 0)),
        (A, PlayerState(A, 50_000, True, 0.0), None),  # seeks are not mirrored
        (A, PlayerState(A, 50_000, False, 0.0), None),  # nor pauses
        (A, PlayerState(B, 9_000, True, 0.0), Play(f"spotify:track:{B}", 0)),  # always from 0
        (A, PlayerState.idle(0.0), None),
    ],
)
def test_decide(last: str | None, host: PlayerState, expected: Play | None) -> None:
    assert decide(last, host) == expected

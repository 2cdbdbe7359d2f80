"""Host change detection, one row per situation the sync loop meets."""

from __future__ import annotations

import pytest

from core.sync.changes import Change, HostChange, detect
from core.sync.state import PlayerState

A, B = "A" * 22, "B" * 22
T0 = 1_000.0


def st(
    track: str | None = A,
    pos: int = 60_000,
    playing: bool = True,
    *,
    at: float = T0,
    dur: int = 200_000,
    dev: str | None = "phone",
    unc: int = 0,
) -> PlayerState:
    return PlayerState(track, pos, playing, at, dur if track else 0, dev, unc)


C = Change
ROWS: list[tuple[str, PlayerState | None, PlayerState, set[Change], int, bool]] = [
    # name, previous, current, kinds, jump_ms, natural_end
    ("first sight, playing", None, st(), {C.STARTED}, 0, False),
    ("first sight, nothing", None, PlayerState.idle(T0), set(), 0, False),
    ("idle -> track", PlayerState.idle(T0), st(at=T0 + 1), {C.STARTED}, 0, False),
    ("steady play, exact", st(), st(pos=61_000, at=T0 + 1), set(), 0, False),
    ("steady, 300 ms jitter", st(), st(pos=61_300, at=T0 + 1), set(), 0, False),
    ("steady, -900 ms jitter", st(), st(pos=60_100, at=T0 + 1), set(), 0, False),
    ("seek forward 30 s", st(), st(pos=91_000, at=T0 + 1), {C.SEEK}, 30_000, False),
    ("seek back to 0", st(), st(pos=0, at=T0 + 1), {C.SEEK}, -61_000, False),
    ("seek 1.2 s beyond tol", st(), st(pos=62_200, at=T0 + 1), {C.SEEK}, 1_200, False),
    # the same 1.2 s is within tolerance once the read's own uncertainty (rtt/2) is added
    ("1.2 s but slow read", st(), st(pos=62_200, at=T0 + 1, unc=300), set(), 0, False),
    ("manual skip", st(), st(B, pos=400, at=T0 + 1), {C.TRACK}, 0, False),
    ("natural end", st(pos=199_500), st(B, pos=600, at=T0 + 1), {C.TRACK}, 0, True),
    ("skip at 2 s before end", st(pos=197_000), st(B, 300, at=T0 + 1), {C.TRACK}, 0, True),
    ("skip at 10 s before end", st(pos=189_000), st(B, 300, at=T0 + 1), {C.TRACK}, 0, False),
    ("pause", st(), st(pos=60_500, playing=False, at=T0 + 1), {C.PAUSE}, 0, False),
    ("pause right away", st(), st(pos=60_000, playing=False, at=T0 + 1), {C.PAUSE}, 0, False),
    ("pause at end of poll", st(), st(pos=61_000, playing=False, at=T0 + 1), {C.PAUSE}, 0, False),
    (
        "pause + seek",
        st(),
        st(pos=120_000, playing=False, at=T0 + 1),
        {C.PAUSE, C.SEEK},
        59_000,
        False,
    ),
    ("resume", st(playing=False), st(pos=60_400, at=T0 + 1), {C.RESUME}, 0, False),
    ("resume at once", st(playing=False), st(pos=61_000, at=T0 + 1), {C.RESUME}, 0, False),
    (
        "resume elsewhere",
        st(playing=False),
        st(pos=10_000, at=T0 + 1),
        {C.RESUME, C.SEEK},
        -50_000,
        False,
    ),
    ("paused, still", st(playing=False), st(playing=False, at=T0 + 5), set(), 0, False),
    (
        "paused, scrubbed",
        st(playing=False),
        st(pos=30_000, playing=False, at=T0 + 5),
        {C.SEEK},
        -30_000,
        False,
    ),
    (
        "skip while paused",
        st(playing=False),
        st(B, 0, playing=False, at=T0 + 5),
        {C.TRACK},
        0,
        False,
    ),
    ("skip and pause", st(), st(B, 0, playing=False, at=T0 + 1), {C.TRACK, C.PAUSE}, 0, False),
    ("stopped (204)", st(), PlayerState.idle(T0 + 1), {C.STOPPED}, 0, False),
    ("still idle", PlayerState.idle(T0), PlayerState.idle(T0 + 10), set(), 0, False),
    ("device switch", st(), st(pos=61_000, at=T0 + 1, dev="laptop"), {C.DEVICE}, 0, False),
    (
        "device switch + pause",
        st(),
        st(pos=61_000, playing=False, at=T0 + 1, dev="laptop"),
        {C.DEVICE, C.PAUSE},
        0,
        False,
    ),
    ("device id unknown", st(dev=None), st(pos=61_000, at=T0 + 1), set(), 0, False),
    # at the very end the host position stops at the duration; that is not a seek
    ("held at end", st(pos=199_500), st(pos=200_000, at=T0 + 1), set(), 0, False),
    ("repeat one", st(pos=199_500), st(pos=500, at=T0 + 1), {C.SEEK}, -199_500, False),
]


@pytest.mark.parametrize(
    ("previous", "current", "kinds", "jump", "natural"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_detect(
    previous: PlayerState | None,
    current: PlayerState,
    kinds: set[Change],
    jump: int,
    natural: bool,
) -> None:
    change = detect(previous, current, tolerance_ms=1000)
    assert change == HostChange(frozenset(kinds), jump_ms=jump, natural_end=natural)


def test_tolerance_is_a_parameter() -> None:
    assert Change.SEEK in detect(st(), st(pos=61_600, at=T0 + 1), tolerance_ms=500)
    assert not detect(st(), st(pos=61_600, at=T0 + 1), tolerance_ms=1000)


def test_observed_uses_request_midpoint_and_ignores_spotify_timestamp() -> None:
    seen = PlayerState.observed(
        track_id=A,
        progress_ms=10_000,
        is_playing=True,
        requested_at=T0,
        answered_at=T0 + 0.2,
        duration_ms=200_000,
        device_id="phone",
    )
    assert seen.at == pytest.approx(T0 + 0.1)
    assert seen.uncertainty_ms == 100
    assert seen.position_at(T0 + 1.1) == 11_000
    assert seen.position_at(T0 + 500) == 200_000  # clamped to the duration


def test_describe() -> None:
    assert detect(st(), st(pos=0, playing=False, at=T0 + 1)).describe() == "pause,seek"
    assert detect(st(), st(pos=61_000, at=T0 + 1)).describe() == "none"

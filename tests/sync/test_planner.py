"""The planner, row by row: host state + what we know of a listener -> exactly one action."""

from __future__ import annotations

import pytest

from core.sync.clock import Latency
from core.sync.planner import (
    READ_FIRST,
    SETTLING,
    Action,
    ListenerView,
    Mark,
    Nothing,
    Pause,
    Play,
    Resume,
    Seek,
    SyncConfig,
    belief_after,
    needs_read,
    plan,
    plan_listener,
)
from core.sync.state import PlayerState
from storage.records import ListenerStatus as S

A, B, X = "A" * 22, "B" * 22, "X" * 22
URI_A = f"spotify:track:{A}"
NOW = 101.0
LAT = Latency(mean_s=0.1, deviation_s=0.01, samples=10)


def st(
    track: str | None = A,
    pos: int = 60_500,
    playing: bool = True,
    *,
    at: float = NOW,
    dur: int = 200_000,
    dev: str | None = None,
) -> PlayerState:
    return PlayerState(track, pos, playing, at, dur if track else 0, dev)


# The host was read at 100.5 at 60 000 ms: at NOW it is at 60 500, and a command sent at NOW
# lands 100 ms later, at 60 600.
HOST = st(pos=60_000, at=100.5)
HOST_PAUSED = st(pos=60_000, playing=False, at=100.5)
HOST_IDLE = PlayerState.idle(100.5)


def view(
    belief: PlayerState | None = None,
    observed: PlayerState | None = None,
    *,
    status: S = S.ATTACHED,
    retry_at: float = 0.0,
    device: str | None = None,
    latency: Latency = LAT,
    commanded_at: float = 0.0,
) -> ListenerView:
    return ListenerView(7, status, belief, observed, latency, device, retry_at, commanded_at)


IN_SYNC = st(pos=59_500, at=100.0)  # commanded at 100.0 -> at 60 500 now, like the host
COMMANDED = 96.0  # a belief from a command long enough ago that observations are settled

ROWS: list[tuple[str, PlayerState, ListenerView, Action]] = [
    # --- commands from beliefs --------------------------------------------------------------
    ("joined, host playing: read first", HOST, view(), READ_FIRST),
    ("in sync", HOST, view(IN_SYNC), Nothing()),
    ("host skipped", HOST, view(st(B, 10_000, at=99.0)), Play(URI_A, 60_600)),
    ("host resumed", HOST, view(st(pos=40_000, playing=False)), Resume(URI_A, 60_600)),
    ("host seeked away", HOST, view(st(pos=30_500)), Seek(60_600)),
    ("host seeked back", HOST, view(st(pos=90_500)), Seek(60_600)),
    ("900 ms off: jitter", HOST, view(st(pos=61_400)), Nothing()),
    ("1.1 s off: seek", HOST, view(st(pos=61_600)), Seek(60_600)),
    ("host paused", HOST_PAUSED, view(IN_SYNC), Pause()),
    ("host paused, listener too", HOST_PAUSED, view(st(playing=False)), Nothing()),
    ("host paused, listener unknown: read first", HOST_PAUSED, view(), READ_FIRST),
    ("host stopped", HOST_IDLE, view(IN_SYNC), Pause()),
    ("host stopped, listener paused", HOST_IDLE, view(st(playing=False)), Nothing()),
    ("host stopped, listener unknown: read first", HOST_IDLE, view(), READ_FIRST),
    (
        "slow listener lands later",
        HOST,
        view(st(B), latency=Latency(0.3, 0.01, 9)),
        Play(URI_A, 60_800),
    ),
    ("picked device is used", HOST, view(st(B), device="tv"), Play(URI_A, 60_600, "tv")),
    (
        "user moved device: follow them, never pull them back",
        HOST,
        view(
            st(pos=55_500, at=COMMANDED, dev="laptop"), st(pos=58_500, dev="phone"), device="laptop"
        ),
        Seek(60_600),
    ),
    (
        "user moved device, in sync there",
        HOST,
        view(st(at=COMMANDED, dev="laptop"), st(pos=60_400, dev="phone"), device="laptop"),
        Nothing(),
    ),
    ("both at track end", st(pos=200_000, at=100.5), view(st(pos=199_000, at=99.0)), Nothing()),
    # --- statuses ----------------------------------------------------------------------------
    ("detached: left alone", HOST, view(st(B), status=S.DETACHED), Nothing("status detached")),
    ("relink: left alone", HOST, view(status=S.NEEDS_RELINK), Nothing("status needs_relink")),
    (
        "no premium: left alone",
        HOST,
        view(status=S.PREMIUM_REQUIRED),
        Nothing("status premium_required"),
    ),
    ("no device, waiting", HOST, view(status=S.NO_DEVICE, retry_at=110), Nothing("backing off")),
    ("no device, retry due: read first", HOST, view(status=S.NO_DEVICE, retry_at=100), READ_FIRST),
    (
        "no device with a retained belief: read first",
        HOST,
        view(IN_SYNC, status=S.NO_DEVICE, retry_at=100),
        READ_FIRST,
    ),
    (
        "no device, reopened Spotify on the old track, paused",
        HOST,
        view(IN_SYNC, st(B, 5_000, playing=False), status=S.NO_DEVICE, retry_at=100),
        Play(URI_A, 60_600),
    ),
    (
        "no device, still nothing active",
        HOST,
        view(IN_SYNC, PlayerState.idle(NOW), status=S.NO_DEVICE, retry_at=100),
        Play(URI_A, 60_600),
    ),
    (
        "error, backing off",
        HOST,
        view(IN_SYNC, status=S.ERROR, retry_at=102),
        Nothing("backing off"),
    ),
    ("error, retry due", HOST, view(st(B), status=S.ERROR, retry_at=101), Play(URI_A, 60_600)),
    # --- observations: autonomy and drift --------------------------------------------------
    (
        "listener paused",
        HOST,
        view(st(pos=55_000, at=COMMANDED), st(pos=57_000, playing=False)),
        Mark(S.DETACHED, "paused on their own"),
    ),
    (
        "listener played something else",
        HOST,
        view(st(pos=55_000, at=COMMANDED), st(X, 3_000)),
        Mark(S.DETACHED, "playing something else"),
    ),
    (
        "listener resumed on their own",
        HOST_PAUSED,
        view(st(pos=55_000, playing=False, at=COMMANDED), st(pos=58_000)),
        Mark(S.DETACHED, "started playing on their own"),
    ),
    (
        "listener closed Spotify",
        HOST,
        view(st(pos=55_000, at=COMMANDED), PlayerState.idle(NOW)),
        Mark(S.NO_DEVICE, "Spotify stopped playing — open Spotify"),
    ),
    (
        "paused listener's device went idle",
        HOST_PAUSED,
        view(st(pos=55_000, playing=False, at=COMMANDED), PlayerState.idle(NOW)),
        Nothing(),
    ),
    (
        "paused listener's device went idle, host resumes",
        HOST,
        view(st(pos=55_000, playing=False, at=COMMANDED), PlayerState.idle(NOW)),
        Play(URI_A, 60_600),
    ),
    (
        "their copy ended first: autoplay is not wandering",
        st(pos=199_000, at=100.5),
        view(st(pos=195_000, at=COMMANDED), st(X, 1_000)),
        Play(URI_A, 199_600),
    ),
    (
        "their copy ended first: a stop is not wandering",
        st(pos=199_000, at=100.5),
        view(st(pos=195_000, at=COMMANDED), st(pos=200_000, playing=False)),
        Resume(URI_A, 199_600),
    ),
    (
        "read too soon after our command: ignored",
        HOST,
        view(st(pos=59_500, at=100.0), st(pos=40_000, playing=False)),
        Nothing(),
    ),
    (
        "drift 2 s: corrected",
        HOST,
        view(st(pos=55_500, at=COMMANDED), st(pos=58_500)),
        Seek(60_600),
    ),
    (
        "drift 1.2 s: below the drift threshold",
        HOST,
        view(st(pos=55_500, at=COMMANDED), st(pos=59_300)),
        Nothing(),
    ),
    (
        "observation in sync, belief stale",
        HOST,
        view(st(pos=10_000, at=COMMANDED), st(pos=60_400)),
        Nothing(),
    ),
    ("restart: observed in sync", HOST, view(None, st(pos=60_300)), Nothing()),
    ("restart: observed elsewhere", HOST, view(None, st(X, 3_000)), Play(URI_A, 60_600)),
    ("restart: observed paused", HOST, view(None, st(playing=False)), Resume(URI_A, 60_600)),
    ("restart: host paused, listener plays", HOST_PAUSED, view(None, st()), Pause()),
    ("restart: all quiet", HOST_PAUSED, view(None, PlayerState.idle(NOW)), Nothing()),
    (
        "resync while the host is paused: their own track is paused",
        HOST_PAUSED,
        view(None, st(X, 3_000)),
        Pause(),
    ),
    # --- Spotify's read-after-write lag: the belief wins inside the settle window ------------
    (
        "read just after our play still shows the old track",
        HOST,
        view(st(pos=60_400, at=100.9), st(B, 10_000, at=NOW), commanded_at=100.8),
        Nothing(),
    ),
    (
        "a timed-out command may still land: no second command",
        HOST,
        view(None, st(B, 10_000, at=NOW), commanded_at=100.0),
        SETTLING,
    ),
]


@pytest.mark.parametrize(
    ("host", "listener", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_plan_listener(host: PlayerState, listener: ListenerView, expected: Action) -> None:
    assert plan_listener(host, listener, NOW, SyncConfig()) == expected


def test_plan_covers_every_listener_independently() -> None:
    views = {
        1: ListenerView(1, latency=LAT),
        2: ListenerView(2, belief=IN_SYNC, latency=LAT),
        3: ListenerView(3, S.DETACHED),
    }
    assert plan(HOST, views, NOW) == {
        1: READ_FIRST,
        2: Nothing(),
        3: Nothing("status detached"),
    }


def test_thresholds_come_from_config() -> None:
    strict = SyncConfig(seek_tolerance_ms=200, drift_threshold_ms=200)
    assert plan_listener(HOST, view(st(pos=60_800)), NOW, strict) == Seek(60_600)
    drifting = view(st(pos=55_500, at=COMMANDED), st(pos=60_800))
    assert plan_listener(HOST, drifting, NOW, strict) == Seek(60_600)


# --- beliefs after the round -----------------------------------------------------------------

LANDED = 101.08


@pytest.mark.parametrize(
    ("listener", "action", "landed", "expected"),
    [
        (view(), Play(URI_A, 60_600), LANDED, PlayerState(A, 60_600, True, LANDED, 200_000)),
        (view(device="tv"), Play(URI_A, 1, "tv"), 5.0, PlayerState(A, 1, True, 5.0, 200_000, "tv")),
        (
            view(st(pos=10_000, playing=False, at=90.0)),
            Resume(URI_A, 60_600),
            LANDED,
            PlayerState(A, 60_600, True, LANDED, 200_000),
        ),
        (view(st(pos=30_000, at=100.0)), Seek(60_600), 101.0, st(pos=60_600, at=101.0)),
        (view(), Seek(60_600), 101.0, None),
        (view(st(pos=30_000, at=100.0)), Pause(), 101.0, st(pos=31_000, playing=False, at=101.0)),
        (view(), Pause(), 101.0, PlayerState.idle(101.0)),
        # a failed command leaves the belief as it was ...
        (view(IN_SYNC), Seek(60_600), None, IN_SYNC),
        # ... refreshed by this round's settled observation
        (view(st(at=COMMANDED), st(pos=1, at=NOW)), Seek(60_600), None, st(pos=1, at=NOW)),
        (view(st(at=COMMANDED), st(pos=1, at=NOW)), Nothing(), None, st(pos=1, at=NOW)),
        # an unsettled observation is not trusted
        (view(IN_SYNC, st(pos=1, at=NOW)), Nothing(), None, IN_SYNC),
        (view(IN_SYNC), Mark(S.DETACHED, "x"), None, IN_SYNC),
    ],
)
def test_belief_after(
    listener: ListenerView, action: Action, landed: float | None, expected: PlayerState | None
) -> None:
    assert belief_after(listener, action, HOST, landed) == expected


def test_a_lost_command_is_planned_again() -> None:
    listener = view(st(B, 10_000, at=99.0))
    first = plan_listener(HOST, listener, NOW)
    assert first == Play(URI_A, 60_600)
    listener = ListenerView(7, belief=belief_after(listener, first, HOST, None), latency=LAT)
    assert plan_listener(HOST, listener, NOW + 1) == Play(URI_A, 61_600)
    accepted = belief_after(listener, Play(URI_A, 61_600), HOST, NOW + 1.1)
    assert plan_listener(HOST, ListenerView(7, belief=accepted, latency=LAT), NOW + 2) == Nothing()


@pytest.mark.parametrize(
    ("listener", "expected"),
    [
        (view(), True),
        (view(IN_SYNC), False),
        (view(IN_SYNC, status=S.NO_DEVICE), True),
        (view(status=S.NO_DEVICE, retry_at=110), False),
        (view(status=S.DETACHED), False),
        (view(status=S.PREMIUM_REQUIRED), False),
        (view(commanded_at=100.5), False),  # a command of ours may still be landing
    ],
)
def test_needs_read(listener: ListenerView, expected: bool) -> None:
    assert needs_read(listener, NOW) is expected

"""Listener command failures -> status, retry and whether to tell the user (DESIGN §4)."""

from __future__ import annotations

import pytest

from core.errors import (
    BudgetRefused,
    NoActiveDevice,
    NotFound,
    NotLinked,
    PremiumRequired,
    RateLimited,
    RestrictionViolated,
    TokenExpired,
    TokenRevoked,
    Upstream,
)
from core.sync.failures import BUDGET_RECHECK_S, Verdict, classify
from core.sync.planner import Command, Pause, Play, Seek
from storage.records import ListenerStatus as S

NOW = 500.0
PLAY = Play("spotify:track:" + "A" * 22, 1_000)
PLAY_ON_TV = Play("spotify:track:" + "A" * 22, 1_000, "tv")
RELINK = "Spotify link expired — run /link again"
UNLINKED = "Spotify not linked — run /link again"
PREMIUM = "needs Spotify Premium — /gamenight listen plays along in your browser"
NO_DEVICE = "no Spotify device — open Spotify on any device"
SILENT = "Spotify is not answering for them"

ROWS: list[tuple[str, BaseException, Command, int, bool, Verdict]] = [
    # name, error, action, failures so far, device tried, verdict
    ("revoked", TokenRevoked("x"), PLAY, 0, False, Verdict(S.NEEDS_RELINK, RELINK, tell_user=True)),
    ("unlinked", NotLinked("x"), PLAY, 0, False, Verdict(S.NEEDS_RELINK, UNLINKED, tell_user=True)),
    (
        "unlinked: never an error",
        NotLinked("x"),
        Pause(),
        2,
        False,
        Verdict(S.NEEDS_RELINK, UNLINKED, tell_user=True),
    ),
    (
        "no premium",
        PremiumRequired("x"),
        PLAY,
        0,
        False,
        Verdict(S.PREMIUM_REQUIRED, PREMIUM, tell_user=True),
    ),
    ("no device: look", NoActiveDevice("x"), PLAY, 0, False, Verdict(pick_device=True)),
    (
        "no device after looking",
        NoActiveDevice("x"),
        PLAY_ON_TV,
        0,
        True,
        Verdict(S.NO_DEVICE, NO_DEVICE, retry_at=NOW + 15, tell_user=True),
    ),
    ("pause a paused player", RestrictionViolated("x"), Pause(), 0, False, Verdict(done=True)),
    (
        "restricted play: transient",
        RestrictionViolated("x"),
        PLAY,
        0,
        False,
        Verdict(retry_at=NOW + 1, transient=True),
    ),
    ("429", RateLimited("x", retry_after=7), PLAY, 2, False, Verdict(retry_at=NOW + 7)),
    # Our own budget said no (nothing sent): not a 429's hours of Retry-After, no status change.
    (
        "budget refused",
        BudgetRefused("x", priority=0, retry_after=5 * 3600),
        PLAY,
        2,
        False,
        Verdict(retry_at=NOW + BUDGET_RECHECK_S),
    ),
    ("budget soon free", BudgetRefused("x", 0, 7), PLAY, 0, False, Verdict(retry_at=NOW + 7)),
    ("picked device vanished", NotFound("x"), PLAY_ON_TV, 0, False, Verdict(pick_device=True)),
    (
        "not found, no device",
        NotFound("x"),
        PLAY,
        0,
        False,
        Verdict(retry_at=NOW + 1, transient=True),
    ),
    ("5xx once", Upstream("x", 502), Seek(1), 0, False, Verdict(retry_at=NOW + 1, transient=True)),
    (
        "timeout twice",
        Upstream("x", timeout=True),
        PLAY,
        1,
        False,
        Verdict(retry_at=NOW + 2, transient=True),
    ),
    (
        "third failure: error status",
        Upstream("x", 503),
        PLAY,
        2,
        False,
        Verdict(S.ERROR, SILENT, retry_at=NOW + 4, transient=True),
    ),
    (
        "backoff is capped",
        TimeoutError(),
        PLAY,
        9,
        False,
        Verdict(S.ERROR, SILENT, retry_at=NOW + 30, transient=True),
    ),
    (
        "token refresh failed twice",
        TokenExpired("x"),
        PLAY,
        0,
        False,
        Verdict(retry_at=NOW + 1, transient=True),
    ),
    (
        "restricted, repeatedly",
        RestrictionViolated("x"),
        PLAY,
        4,
        False,
        Verdict(
            S.ERROR,
            "Spotify refused the command on their device",
            retry_at=NOW + 16,
            transient=True,
        ),
    ),
]


@pytest.mark.parametrize(
    ("error", "action", "failures", "tried", "expected"),
    [r[1:] for r in ROWS],
    ids=[r[0] for r in ROWS],
)
def test_classify(
    error: BaseException, action: Command, failures: int, tried: bool, expected: Verdict
) -> None:
    assert classify(error, action, now=NOW, failures=failures, device_tried=tried) == expected

"""What a failed listener command means for that listener (DESIGN §4), as a pure mapping.

The Spotify client has already refreshed an expired token and retried once; what reaches here
is final for this round. Rate limiting is app-wide and handled by the engine's shared limiter
and the poll schedule, so for the listener it is only "try again later", with no status change.
Our own budget refusing a command (`BudgetRefused`: nothing was sent, it is no 429) is the same
for the listener, but only for a short while: its `retry_after` is when the budget's oldest
call leaves the rolling window, hours on a daily budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import (
    BudgetRefused,
    NoActiveDevice,
    NotFound,
    NotLinked,
    PremiumRequired,
    RateLimited,
    RestrictionViolated,
    ScopeMissing,
    TokenRevoked,
)
from core.sync.planner import Command, Pause
from storage.records import ListenerStatus

NO_DEVICE_RETRY_S = 15.0  # how often to look again for a device once told to open Spotify
# ...backed off while nobody opens it: each look costs calls of a dev-mode app's daily quota.
NO_DEVICE_BACKOFF_S = (NO_DEVICE_RETRY_S, 60.0, 120.0)
ERROR_AFTER_FAILURES = 3  # transient failures in a row before the status says "error"
MAX_BACKOFF_S = 30.0
BUDGET_RECHECK_S = 60.0  # a budget refusal is checked again this soon (it costs no call)


@dataclass(frozen=True)
class Verdict:
    status: ListenerStatus | None = None  # new status; None leaves it as it is
    detail: str = ""  # short, user-safe, for the status message
    done: bool = False  # the command's goal holds anyway (pausing a paused player)
    pick_device: bool = False  # list their devices and retry the command on one of them
    retry_at: float = 0.0  # no command to this listener before this local time
    tell_user: bool = False  # the user must act: tell them once, privately
    transient: bool = False  # counts towards ERROR_AFTER_FAILURES


def classify(
    error: BaseException,
    action: Command,
    *,
    now: float,
    failures: int = 0,
    device_tried: bool = False,
) -> Verdict:
    """Map an exception from a listener command to what happens next.

    `failures` counts earlier transient failures in a row for this listener; `device_tried`
    says the command already went to a device picked from their device list.
    """
    if isinstance(error, ScopeMissing):  # (hostile, #13) a relink prompt, not "not answering"
        return Verdict(
            ListenerStatus.NEEDS_RELINK,
            "Spotify link lacks a permission — run /link again",
            tell_user=True,
        )
    if isinstance(error, TokenRevoked):
        return Verdict(
            ListenerStatus.NEEDS_RELINK,
            "Spotify link expired — run /link again",
            tell_user=True,
        )
    if isinstance(error, NotLinked):  # they ran /unlink: only /link brings them back
        return Verdict(
            ListenerStatus.NEEDS_RELINK,
            "Spotify not linked — run /link again",
            tell_user=True,
        )
    if isinstance(error, PremiumRequired):
        return Verdict(
            ListenerStatus.PREMIUM_REQUIRED,
            "needs Spotify Premium — /gamenight listen plays along in your browser",
            tell_user=True,
        )
    if isinstance(error, NoActiveDevice):
        if not device_tried:
            return Verdict(pick_device=True)
        return Verdict(
            ListenerStatus.NO_DEVICE,
            "no Spotify device — open Spotify on any device",
            retry_at=now + NO_DEVICE_RETRY_S,
            tell_user=True,
        )
    if isinstance(error, RestrictionViolated) and isinstance(action, Pause):
        return Verdict(done=True)  # Spotify's answer to pausing a player that is not playing
    if isinstance(error, RateLimited):
        return Verdict(retry_at=now + error.retry_after)
    if isinstance(error, BudgetRefused):
        return Verdict(retry_at=now + min(error.retry_after, BUDGET_RECHECK_S))
    if isinstance(error, NotFound) and action.device_id is not None and not device_tried:
        # The device we picked for them is gone: forget it and look again right away.
        return Verdict(pick_device=True)

    backoff = min(MAX_BACKOFF_S, 2.0**failures)
    if failures + 1 >= ERROR_AFTER_FAILURES:
        return Verdict(
            ListenerStatus.ERROR,
            _error_detail(error),
            retry_at=now + backoff,
            transient=True,
        )
    return Verdict(retry_at=now + backoff, transient=True)


def _error_detail(error: BaseException) -> str:
    if isinstance(error, RestrictionViolated):
        return "Spotify refused the command on their device"
    if isinstance(error, NotFound):
        return "track not available for them"
    return "Spotify is not answering for them"

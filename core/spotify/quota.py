"""The quota governor: one budget of Spotify calls for the whole developer account.

Why: a development-mode app's calls count against a quota per *developer account* (shared by
all its apps); past it every call answers 429 QUOTA_EXCEEDED for 13-15 hours (shared/REALITY.md).
Spotify publishes no number, so we keep our own, smaller budget over a rolling window and spend
it by priority: each level below COMMAND leaves a larger reserve untouched, so under pressure
the least important calls stop first (stepwise degradation) and a person waiting on a command
is served to the end.

Every call the process makes passes `admit` (the client layer calls it for Web API and token
calls), which records it in storage: a restart does not reset the budget, and on Redis every
process spends the one budget. `allows`, `pressure` and `status` are synchronous reads of what
the last admit (or `refresh`) learned, for schedulers that decide many times a second.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from core.errors import BudgetRefused
from core.spotify.counters import MemoryCounters, StoreEpisode
from core.spotify.errors import quota_held
from core.timetext import TimedText, local_time
from storage.base import CounterStore
from storage.errors import StorageError

log = logging.getLogger(__name__)

COUNTER = "spotify:calls"
HOLD = "spotify:quota"
QUOTA_REASON = "QUOTA_EXCEEDED"


class CallPriority(IntEnum):
    """What a call is for; lower value = more important."""

    COMMAND = 0  # commands after a host change; a person waiting (/link callback, /me)
    END_OF_TRACK = 1  # the read just after the host's predicted track end
    SAFETY = 2  # slow safety polls of the host
    DRIFT = 3  # listener drift checks
    BACKGROUND = 4  # indexer, prefetch


# Share of the budget each level must leave untouched: the steps of degradation.
RESERVE: dict[CallPriority, float] = {
    CallPriority.COMMAND: 0.0,
    CallPriority.END_OF_TRACK: 0.05,
    CallPriority.SAFETY: 0.15,
    CallPriority.DRIFT: 0.30,
    CallPriority.BACKGROUND: 0.50,
}


@dataclass(frozen=True)
class QuotaStatus:
    spent: int
    limit: int
    window_s: float
    held_until: float | None  # wall-clock epoch when Spotify's QUOTA_EXCEEDED hold ends
    reason: str  # "ok", "pressure" (low priorities refused) or "quota_exceeded"

    @property
    def left(self) -> int:
        return max(0, self.limit - self.spent)

    def line(self) -> str:
        """One line for /gamenight status: "Spotify calls today: 312 of 1,200" (a TimedText
        naming the resume time while Spotify's quota holds every call)."""
        span = "today" if self.window_s >= 20 * 3600 else f"in {self.window_s / 3600:g} h"
        text = f"Spotify calls {span}: {self.spent:,} of {self.limit:,}"
        if self.held_until is not None:
            held = " (Spotify's quota is used up; calls resume at {time})"
            return TimedText(text + held, self.held_until)
        if self.reason == "pressure":
            text += " (saving calls: fewer checks until the budget recovers)"
        return text


class QuotaGovernor:
    def __init__(
        self,
        budget: int,
        *,
        window: float = 24 * 3600.0,
        store: CounterStore | None = None,
        clock: Callable[[], float] = time.time,
        hold_refresh: float = 1.0,
    ) -> None:
        if budget < 1 or window <= 0:
            raise ValueError("budget must be >= 1 and window > 0")
        self.budget = budget
        self.window = window
        self._store: CounterStore = store if store is not None else MemoryCounters()
        self._clock = clock
        self._hold_refresh = hold_refresh
        self._spent = 0
        self._held_until: float | None = None
        self._hold_checked = -math.inf
        self._store_episode = StoreEpisode(
            log,
            "cannot record Spotify calls in storage (%s): counting in memory",
            "recording Spotify calls in storage again",
        )

    # --- synchronous view ---------------------------------------------------------------

    def limit_for(self, priority: CallPriority) -> int:
        """How many calls of the window may be spent before `priority` is refused."""
        return max(1, math.floor(self.budget * (1.0 - RESERVE[priority])))

    def left_for(self, priority: CallPriority) -> int:
        """Calls `priority` may still spend (0 while held)."""
        if self.held_until() is not None:
            return 0
        return max(0, self.limit_for(priority) - self._spent)

    def held_until(self) -> float | None:
        held = self._held_until
        return held if held is not None and held > self._clock() else None

    def allows(self, priority: CallPriority) -> bool:
        """Would a call at this priority be spent now?"""
        return self.held_until() is None and self._spent < self.limit_for(priority)

    def pressure(self) -> float:
        """0.0 fresh .. 1.0 at the reserve (only commands left); 1.0 while held."""
        if self.held_until() is not None:
            return 1.0
        return min(1.0, self._spent / self.limit_for(CallPriority.END_OF_TRACK))

    def status(self) -> QuotaStatus:
        held = self.held_until()
        if held is not None:
            reason = "quota_exceeded"
        elif not self.allows(CallPriority.DRIFT):
            reason = "pressure"
        else:
            reason = "ok"
        return QuotaStatus(self._spent, self.budget, self.window, held, reason)

    # --- storage --------------------------------------------------------------------------

    async def refresh(self) -> QuotaStatus:
        """Re-read the shared count and hold (other processes spend them too)."""
        now = self._clock()
        self._spent = (await self._store.count_counter(COUNTER, now, self.window)).count
        await self._read_hold(now)
        return self.status()

    def precheck(self, priority: CallPriority) -> None:
        """Raise what `admit` would, from what is known already, without recording: callers
        check before spending a token refresh on a call that would be refused anyway."""
        held = self.held_until()
        if held is not None:
            raise quota_held(held, self._clock())
        if self._spent >= self.limit_for(priority):
            raise _refused(priority, self.window)

    async def admit(self, priority: CallPriority) -> None:
        """Record one call at `priority`; QuotaHeld or BudgetRefused (nothing recorded) when
        it may not go out."""
        now = self._clock()
        if now - self._hold_checked >= self._hold_refresh:
            await self._read_hold(now)
        held = self.held_until()
        if held is not None:
            raise quota_held(held, now)
        try:
            hit = await self._store.hit_counter(COUNTER, now, self.window, self.limit_for(priority))
        except StorageError as exc:
            # A failing store (a full disk, Redis gone) must not stop every Spotify call with
            # it: count here meanwhile; the store's own count takes over when it answers.
            self._store_episode.failed(exc)
            if self._spent >= self.limit_for(priority):
                raise _refused(priority, self.window) from None
            self._spent += 1
            return
        self._store_episode.answered()
        self._spent = hit.count
        if not hit.recorded:
            wait = (hit.oldest + self.window - now) if hit.oldest is not None else self.window
            raise _refused(priority, wait)

    async def hold(self, until: float) -> float:
        """Spotify answered QUOTA_EXCEEDED: hold every call of every process until `until`
        (wall epoch). Returns the hold in force: a later one another process stored wins."""
        stored = await self._store.set_hold(HOLD, until, QUOTA_REASON)
        if self._held_until is None or stored.until > self._held_until:
            log.warning(
                "Spotify quota exceeded: holding every Spotify call until %s",
                local_time(stored.until),
            )
        self._held_until = stored.until
        return stored.until

    async def _read_hold(self, now: float) -> None:
        self._hold_checked = now
        try:
            hold = await self._store.get_hold(HOLD, now)
        except StorageError as exc:
            self._store_episode.failed(exc)  # keep the hold this process knows of
            return
        self._held_until = hold.until if hold is not None else None


def _refused(priority: CallPriority, wait: float) -> BudgetRefused:
    return BudgetRefused(
        "This bot is saving its Spotify calls for now; try again later.",
        priority=int(priority),
        retry_after=max(1.0, wait),
    )

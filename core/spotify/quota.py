"""The account-wide Spotify call budget, spent by priority (STAND-IN, branch `presence`).

The `quota` branch builds the real governor here (persisted, shared on Redis, counting every
call). This is the smallest piece with the same interface, so the sync engine can be scheduled
by it meanwhile: an in-memory count over a rolling window, a reserve that only commands may
use, and a hold while Spotify answers QUOTA_EXCEEDED. Constructor, `SpotifyClient.quota` and
`admit` are shaped like the `quota` branch's (as merged on main), so tests and wiring written
here run against either. The integrator keeps `quota`'s version.

Spotify publishes no number for the development-mode quota; operators run out after roughly
1,000-5,000 calls a day (issue #10). The default here is the cautious end of that.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class CallPriority(IntEnum):
    """Lower is more important; under pressure the least important calls stop first."""

    COMMAND = 0  # a command that follows a host change (and the read that confirms it)
    END_OF_TRACK = 1  # the read just after a track's predicted end
    SAFETY = 2  # the slow poll that catches what presence missed
    DRIFT = 3  # reading a listener to check their position
    BACKGROUND = 4  # indexer, metadata


@dataclass(frozen=True)
class QuotaStatus:
    spent: int  # calls in the current window
    limit: int
    window_s: float
    held_until: float | None  # wall-clock time Spotify lets us call again (QUOTA_EXCEEDED)
    reason: str  # why calls are held, "" when they are not


# Pressure (0 fresh .. 1 at the reserve) from which each priority is refused.
STOP_AT = {
    CallPriority.COMMAND: 1.0 + 1e-9,  # commands may use the reserve, never past the limit
    CallPriority.END_OF_TRACK: 1.0,
    CallPriority.SAFETY: 0.9,
    CallPriority.DRIFT: 0.75,
    CallPriority.BACKGROUND: 0.5,
}


DEFAULT_BUDGET = 2500


class QuotaGovernor:
    def __init__(
        self,
        budget: int = DEFAULT_BUDGET,
        *,
        window: float = 86_400.0,
        reserve: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budget = budget
        self.window = window
        self.reserve = reserve
        self._clock = clock
        self._spent: deque[float] = deque()
        self._held_until = 0.0
        self._reason = ""

    def _trim(self, now: float) -> None:
        while self._spent and self._spent[0] <= now - self.window:
            self._spent.popleft()

    def spend(self, calls: int = 1) -> None:
        """Count calls that went out."""
        now = self._clock()
        self._spent.extend([now] * calls)
        self._trim(now)

    async def admit(self, priority: CallPriority) -> None:
        """Count one call (the stand-in refuses nothing: callers ask `allows` first)."""
        self.spend()

    def hold(self, retry_after: float, reason: str = "QUOTA_EXCEEDED") -> None:
        self._held_until = max(self._held_until, self._clock() + retry_after)
        self._reason = reason

    def spent(self) -> int:
        self._trim(self._clock())
        return len(self._spent)

    def pressure(self) -> float:
        """0 with the window fresh, 1 when only the reserve is left (or held)."""
        if self._held_until > self._clock():
            return 1.0
        usable = self.budget * (1 - self.reserve)
        return min(1.0, self.spent() / usable) if usable > 0 else 1.0

    def allows(self, priority: CallPriority) -> bool:
        if self._held_until > self._clock() or self.spent() >= self.budget:
            return False
        return self.pressure() < STOP_AT[priority]

    def status(self) -> QuotaStatus:
        held = self._held_until > self._clock()
        return QuotaStatus(
            spent=self.spent(),
            limit=self.budget,
            window_s=self.window,
            held_until=self._held_until if held else None,
            reason=self._reason if held else "",
        )

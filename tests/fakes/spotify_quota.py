"""The fake Spotify's development-mode quota: one call budget per developer account.

Source (shared/REALITY.md): Spotify blog 2026-07-23 "Web API quota updates for Development
Mode" and the July 2026 Web API changelog. The quota is counted per *developer account*, so
every app of that account shares it; past it every Web API call and every token-endpoint call
of those apps answers

    429 {"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}

with a Retry-After of many hours (reports: 13-15 h). Spotify publishes no number (users report
~1,000-5,000 calls a day; a two-user stats app ran dry at ~1,400), so the budget is
configurable. The default, 1,500 per 24 h, is near the low end of those reports: a test or
bench that needs more calls from one fake raises it explicitly and says why.

    fake.quota.budget = 50            # calls per rolling `window` seconds, per developer account
    fake.quota.retry_after = 2        # seconds; reality is 13-15 h
    fake.quota.exhaust()              # as if the budget just ran out
    fake.quota.enabled = False        # switch the model off for one test
    fake.quota.spent("developer")     # calls counted in the window
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

DEFAULT_DEVELOPER = "developer"
QUOTA_MESSAGE = "Too many requests"
QUOTA_REASON = "QUOTA_EXCEEDED"
# Per 24 h: real accounts run dry after ~1,000-5,000 calls a day (see above).
DEFAULT_BUDGET = 1_500


class QuotaExceeded(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(QUOTA_MESSAGE)
        self.retry_after = retry_after


class DevQuota:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.enabled = True
        self.budget = DEFAULT_BUDGET
        self.window = 24 * 3600.0
        self.retry_after = 14 * 3600.0  # reported 13-15 h
        self._calls: dict[str, deque[float]] = {}
        self._held_until: dict[str, float] = {}
        self.refused = 0  # 429s answered because of the quota

    def spent(self, developer: str = DEFAULT_DEVELOPER) -> int:
        calls = self._calls.get(developer)
        if not calls:
            return 0
        self._trim(calls, self.clock())
        return len(calls)

    def held_until(self, developer: str = DEFAULT_DEVELOPER) -> float | None:
        until = self._held_until.get(developer)
        return until if until is not None and until > self.clock() else None

    def exhaust(self, developer: str = DEFAULT_DEVELOPER) -> None:
        """As if the developer account's budget had just run out."""
        self._held_until[developer] = self.clock() + self.retry_after

    def charge(self, developer: str = DEFAULT_DEVELOPER) -> None:
        """Count one call; QuotaExceeded when the account is over its budget."""
        if not self.enabled:
            return
        now = self.clock()
        held = self._held_until.get(developer)
        if held is not None:
            if held > now:
                self.refused += 1
                raise QuotaExceeded(max(1, math.ceil(held - now)))
            # The hold is over: the account starts a fresh budget.
            del self._held_until[developer]
            self._calls.pop(developer, None)
        calls = self._calls.setdefault(developer, deque())
        self._trim(calls, now)
        if len(calls) >= self.budget:
            self._held_until[developer] = now + self.retry_after
            self.refused += 1
            raise QuotaExceeded(max(1, math.ceil(self.retry_after)))
        calls.append(now)

    def _trim(self, calls: deque[float], now: float) -> None:
        while calls and calls[0] <= now - self.window:
            calls.popleft()

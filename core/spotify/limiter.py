"""One limiter per Spotify app: Retry-After applies to every caller, and a rolling budget.

Spotify rate-limits per app (client id) over a rolling ~30 s window and answers 429 with
Retry-After. Once any call sees a 429, no call of the app goes out before Retry-After ends;
callers that would wait longer than they may get RateLimited at once instead. Below that, calls
are admitted while fewer than `limit` went out in the last `window` seconds, so the app stays
under its budget instead of discovering it through 429s.

The window and the hold live in a CounterStore: the storage backend's (on Redis, and on a
SQLite file the indexer shares with the bot, every process spends one budget and a Retry-After
seen by one holds them all, #15), or, without one, core.spotify.counters.MemoryCounters in this
process. Each acquire records the call in one atomic step; the shared hold is re-read at most
every `hold_refresh` seconds (a hold this process stores applies at once, another process's
within that); `clock` must be wall time so processes agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from core.spotify.counters import FallbackCounters, MemoryCounters
from core.spotify.errors import rate_limited
from storage.base import CounterStore

log = logging.getLogger(__name__)


class AppLimiter:
    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        store: CounterStore | None = None,
        name: str = "spotify:app",
        hold_refresh: float = 1.0,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._blocked_until = 0.0
        self._quota_exceeded = False
        self._store: CounterStore = MemoryCounters() if store is None else FallbackCounters(store)
        self._name = name
        self._hold_refresh = hold_refresh
        self._hold_checked = float("-inf")

    @property
    def blocked_for(self) -> float:
        """Seconds until Retry-After ends (0 when not blocked)."""
        return max(0.0, self._blocked_until - self._clock())

    def penalize(self, retry_after: float, quota_exceeded: bool = False) -> None:
        """A 429 arrived: hold every call of this app for `retry_after` seconds (this
        process only; `hold` shares it)."""
        until = self._clock() + retry_after
        if until > self._blocked_until:
            log.warning(
                "Spotify rate limit: holding every call for %.1f s%s",
                retry_after,
                " (quota exceeded)" if quota_exceeded else "",
            )
            self._blocked_until = until
            self._quota_exceeded = quota_exceeded

    async def hold(self, retry_after: float, quota_exceeded: bool = False) -> None:
        """`penalize`, shared with every process using the same store."""
        self.penalize(retry_after, quota_exceeded)
        reason = "quota" if quota_exceeded else "rate_limit"
        await self._store.set_hold(self._name, self._blocked_until, reason)

    async def _sync_hold(self) -> None:
        # At most every `hold_refresh` seconds: one more storage round trip per Spotify call
        # serialised hundreds of calls behind SQLite's one connection at 200 guilds; a hold
        # this process stored is known here at once, another process's within the refresh.
        now = self._clock()
        if now - self._hold_checked < self._hold_refresh:
            return
        self._hold_checked = now
        hold = await self._store.get_hold(self._name, now)
        if hold is not None and hold.until > self._blocked_until:
            self._blocked_until = hold.until
            self._quota_exceeded = hold.reason == "quota"

    async def acquire(self, max_wait: float) -> None:
        """Wait for a send slot; RateLimited when that would take longer than `max_wait`."""
        deadline = self._clock() + max_wait
        while True:
            await self._sync_hold()
            now = self._clock()
            if self._blocked_until > now:
                wait = self._blocked_until - now
                quota = self._quota_exceeded
            else:
                # Check and record in one atomic step: concurrent callers never over-admit.
                hit = await self._store.hit_counter(self._name, now, self.window, self.limit)
                if hit.recorded:
                    return
                oldest = hit.oldest if hit.oldest is not None else now
                wait, quota = max(0.01, oldest + self.window - now), False
            if now + wait > deadline:
                raise rate_limited(wait, quota, now)
            # Re-check after sleeping: a 429 may have extended the hold meanwhile.
            await self._sleep(wait)

"""Per-client token buckets for the endpoints that can start a stream resolution.

A resolution costs a YouTube search and a yt-dlp run; one client looping over a playlist must
not starve everybody else. Each client (remote address) owns a bucket of `burst` tokens that
refills at `rate` tokens per second; a request spends one token or is refused with 429.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import UserFacingError

# Past this many tracked clients, buckets that have refilled completely are forgotten (a full
# bucket carries no information), so an address scan cannot grow the table without bound.
PRUNE_AT = 10_000


class TooManyRequests(UserFacingError):
    """The client spent its request budget; it may retry after `retry_after` seconds."""

    http_status = 429

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"Too many requests: try again in {seconds} s.")
        self.retry_after = seconds


@dataclass(frozen=True)
class RateLimit:
    rate: float = 2.0  # tokens per second, the sustained request rate
    burst: int = 60  # bucket size: how many requests a client may make at once

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {self}")


class RateLimiter:
    def __init__(
        self,
        limit: RateLimit,
        on_refused: Callable[[], object] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._on_refused = on_refused
        self._clock = clock
        # client -> (tokens left, time they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._prune_at = PRUNE_AT

    def take(self, client: str) -> None:
        """Spend one token of `client`'s bucket or raise TooManyRequests."""
        now = self._clock()
        rate, burst = self.limit.rate, self.limit.burst
        tokens, since = self._buckets.get(client, (burst, now))
        tokens = min(burst, tokens + (now - since) * rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            self._on_refused()
            raise TooManyRequests((1 - tokens) / rate)
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > self._prune_at:
            self._prune(now)

    def _prune(self, now: float) -> None:
        rate, burst = self.limit.rate, self.limit.burst
        self._buckets = {
            client: (tokens, since)
            for client, (tokens, since) in self._buckets.items()
            if tokens + (now - since) * rate < burst
        }
        # When most clients are active, wait for the table to double before scanning again.
        self._prune_at = max(PRUNE_AT, 2 * len(self._buckets))

"""One global token bucket: a cap on work that anyone on the internet can trigger.

Per-client limits (bot/web/ratelimit.py) stop one client hogging the server; they do not stop
many addresses together from spending what every client shares: the Spotify call budget (a
track lookup per unknown id) and YouTube searches made from a client's own claim. Those are
spent through one `Bucket` per process, whoever asks. Not `limits`: one in-process counter needs
no storage backend, and the answer must be synchronous (it is asked on the request path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BucketLimit:
    burst: int  # spent at once from a full bucket
    per_s: float  # refilled per second

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_s <= 0:
            raise ValueError(f"a bucket needs burst >= 1 and per_s > 0, got {self}")


class Bucket:
    def __init__(self, limit: BucketLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._at = clock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = self._clock()
        self._tokens = min(
            float(self.limit.burst), self._tokens + (now - self._at) * self.limit.per_s
        )
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def retry_after(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1.0 - self._tokens) / self.limit.per_s)

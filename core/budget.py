"""Caps on work that anyone on the internet can trigger: one global token bucket, and a
per-key cooldown.

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


class Cooldown:
    """Work on a key is allowed at most once per `cooldown_s` (a forced re-match, a re-extraction
    of a refused URL). At most about `limit` keys are remembered: past it, expired ones go."""

    def __init__(self, cooldown_s: float, limit: int, clock: Callable[[], float]) -> None:
        self._cooldown_s = cooldown_s
        self._limit = limit
        self._clock = clock
        self._at: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        """Whether the work may run now; if so, the cooldown starts."""
        now = self._clock()
        if now - self._at.get(key, float("-inf")) < self._cooldown_s:
            return False
        self._at[key] = now
        if len(self._at) > self._limit:
            cutoff = now - self._cooldown_s
            self._at = {k: t for k, t in self._at.items() if t >= cutoff}
        return True

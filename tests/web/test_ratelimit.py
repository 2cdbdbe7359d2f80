"""The token bucket, driven by a hand-set clock."""

from __future__ import annotations

import pytest

from bot.web.ratelimit import PRUNE_AT, RateLimit, RateLimiter, TooManyRequests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused_with_time_to_wait() -> None:
    clock = Clock()
    refused: list[None] = []
    limiter = RateLimiter(RateLimit(rate=0.5, burst=3), lambda: refused.append(None), clock)
    for _ in range(3):
        limiter.take("a")
    with pytest.raises(TooManyRequests) as caught:
        limiter.take("a")
    assert caught.value.http_status == 429
    assert caught.value.retry_after == 2  # one token at 0.5/s
    assert "try again in 2 s" in caught.value.message
    assert len(refused) == 1


def test_clients_have_separate_buckets() -> None:
    limiter = RateLimiter(RateLimit(rate=1, burst=1), clock=Clock())
    limiter.take("a")
    limiter.take("b")
    with pytest.raises(TooManyRequests):
        limiter.take("a")


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(rate=2, burst=2), clock=clock)
    limiter.take("a")
    limiter.take("a")
    clock.now += 0.5  # one token back
    limiter.take("a")
    with pytest.raises(TooManyRequests):
        limiter.take("a")
    clock.now += 60  # long idle: back to the burst, not 120 tokens
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(TooManyRequests):
        limiter.take("a")


def test_refused_requests_do_not_dig_the_hole_deeper() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(rate=1, burst=1), clock=clock)
    limiter.take("a")
    for _ in range(10):
        with pytest.raises(TooManyRequests):
            limiter.take("a")
    clock.now += 1
    limiter.take("a")


def test_idle_full_buckets_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(rate=1, burst=5), clock=clock)
    for n in range(PRUNE_AT):
        limiter.take(f"old{n}")
    clock.now += 10  # every old bucket has refilled
    limiter.take("new1")
    limiter.take("new2")
    # The old ones went when the table passed PRUNE_AT; the spent ones stay.
    assert set(limiter._buckets) == {"new1", "new2"}


def test_limit_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimit(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        RateLimit(rate=1, burst=0)

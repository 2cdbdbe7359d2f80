"""Rate limits and timeouts: Retry-After holds the whole app, hung calls never hold the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from core.errors import RateLimited, Upstream
from core.spotify import AppLimiter, SpotifyClient
from core.spotify.counters import MemoryCounters
from storage import Storage
from storage.records import Hold
from tests.fakes.spotify import FakeSpotify
from tests.spotify.conftest import ALICE, BOB, client_on, config_for, link


async def test_retry_after_holds_every_caller_of_the_app(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    await link(links, fake, BOB, "bob")
    fake.set_latency(0.02, jitter=0.01)
    fake.fail(429, retry_after=1, path="/v1/me/player", times=1)
    with pytest.raises(RateLimited) as caught:
        await client.playback(ALICE)
    assert caught.value.retry_after == 1
    (answer_429,) = fake.requests("/v1/me/player$")

    calls = [client.playback(ALICE if n % 2 else BOB) for n in range(12)]
    calls += [client.devices(BOB) for _ in range(4)]  # any endpoint, any user of the app
    results = await asyncio.gather(*calls)

    assert len(results) == 16
    later = fake.log[fake.log.index(answer_429) + 1 :]
    assert len(later) == 16
    assert all(r.status in {200, 204} for r in later)
    assert min(r.received_at for r in later) >= answer_429.answered_at + 1.0

    # Later callers are held too, not only the ones in flight.
    await client.playback(ALICE)
    assert fake.log[-1].received_at >= answer_429.answered_at + 1.0


async def test_callers_that_may_not_wait_that_long_fail_fast_without_a_request(
    fake: FakeSpotify, links: Storage, http: aiohttp.ClientSession
) -> None:
    client = client_on(links, http, config_for(fake, max_rate_wait=1.0))
    try:
        await link(links, fake, ALICE, "alice")
        fake.fail(429, retry_after=30, quota=True)
        with pytest.raises(RateLimited):
            await client.playback(ALICE)
        sent = len(fake.log)
        with pytest.raises(RateLimited) as caught:
            await client.devices(ALICE)
        assert len(fake.log) == sent
        assert caught.value.quota_exceeded
        assert 28 < caught.value.retry_after <= 30
    finally:
        await client.aclose()


async def test_fake_app_budget_answers_429_and_the_client_backs_off(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    fake.app.rate_limit = 3
    for _ in range(3):
        await client.devices(ALICE)
    with pytest.raises(RateLimited) as caught:
        await client.devices(ALICE)
    assert caught.value.retry_after == 30
    assert fake.calls_in_window() == 3
    assert client.limiter.blocked_for > 25


async def test_hung_call_times_out_while_other_calls_proceed(
    fake: FakeSpotify, links: Storage, http: aiohttp.ClientSession
) -> None:
    client = SpotifyClient(
        config_for(fake, call_timeout=0.3, socket_grace=0.4, max_workers=2), links, http
    )
    try:
        await link(links, fake, ALICE, "alice")
        await link(links, fake, BOB, "bob")
        fake.hang(path="/v1/me/player", account="alice", seconds=30)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(ticker())
        hung = asyncio.create_task(client.playback(ALICE))
        await asyncio.sleep(0.05)
        assert await client.devices(BOB)  # another call completes meanwhile
        with pytest.raises(Upstream) as caught:
            await hung
        beat.cancel()
        assert caught.value.timeout
        assert caught.value.http_status == 504
        assert ticks >= 10  # the loop kept running while the thread hung

        # The abandoned thread keeps its slot until its socket times out, then gives it back.
        await wait_until(lambda: client.pool.in_use == 0, seconds=5)
        assert await client.devices(ALICE)
    finally:
        await client.aclose()


async def test_capacity_stays_bounded_when_every_thread_hangs(
    fake: FakeSpotify, links: Storage, http: aiohttp.ClientSession
) -> None:
    client = SpotifyClient(
        config_for(fake, call_timeout=0.2, socket_grace=0.6, max_workers=1), links, http
    )
    try:
        await link(links, fake, ALICE, "alice")
        fake.hang(path="/v1/me/player", seconds=30)
        with pytest.raises(Upstream):
            await client.playback(ALICE)
        sent = len(fake.log)
        with pytest.raises(Upstream) as caught:
            await client.devices(ALICE)  # the only thread is still out: no second thread
        assert caught.value.timeout
        assert len(fake.log) == sent
        await wait_until(lambda: client.pool.in_use == 0, seconds=5)
        assert await client.devices(ALICE)
    finally:
        await client.aclose()


async def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the pool keeps a counter, not an event
            await asyncio.sleep(0.02)


# --- the limiter on its own, with a manual clock ------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_limiter_keeps_the_rolling_budget() -> None:
    clock = ManualClock()
    limiter = AppLimiter(3, 30.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):  # sends at 100, 101, 102
        await limiter.acquire(max_wait=0)
        clock.now += 1
    assert clock.slept == []
    clock.now = 112.0
    await limiter.acquire(max_wait=60)  # waits for the send at 100 to leave the window
    assert clock.slept == [18.0]
    assert clock.now == 130.0
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire(max_wait=0.5)  # next slot when the send at 101 leaves
    assert caught.value.retry_after == 1.0
    assert not caught.value.quota_exceeded


async def test_limiter_penalty_holds_calls_and_only_ever_grows() -> None:
    clock = ManualClock()
    limiter = AppLimiter(100, 30.0, clock=clock, sleep=clock.sleep)
    limiter.penalize(5, quota_exceeded=True)
    limiter.penalize(2)  # a shorter Retry-After does not shorten the hold
    assert limiter.blocked_for == 5
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire(max_wait=4)
    assert caught.value.quota_exceeded
    await limiter.acquire(max_wait=5)
    assert clock.now == 105.0
    assert limiter.blocked_for == 0


def test_limiter_rejects_nonsense_budgets() -> None:
    with pytest.raises(ValueError, match="limit"):
        AppLimiter(0, 30)


class CountingCounters(MemoryCounters):
    """One store two limiters share (two processes on one SQLite file), counting hold reads."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_reads = 0

    async def get_hold(self, name: str, now: float) -> Hold | None:
        self.hold_reads += 1
        return await super().get_hold(name, now)


async def test_limiter_reads_the_shared_hold_once_a_second_and_follows_it_within_one() -> None:
    """Each acquire read the shared hold from storage: one more SQLite round trip per Spotify
    call, hundreds of calls a second at 200 guilds, all behind the one connection."""
    clock = ManualClock()
    store = CountingCounters()
    here = AppLimiter(10**6, 30.0, clock=clock, sleep=clock.sleep, store=store)
    there = AppLimiter(10**6, 30.0, clock=clock, sleep=clock.sleep, store=store)
    for _ in range(50):
        await here.acquire(max_wait=0)
        clock.now += 0.01
    assert store.hold_reads == 1
    await there.hold(20.0)  # another process sees a 429 with Retry-After: 20
    clock.now += 1.0
    with pytest.raises(RateLimited) as caught:
        await here.acquire(max_wait=0)  # followed within the refresh interval
    assert caught.value.retry_after == pytest.approx(19.0)
    assert store.hold_reads == 2

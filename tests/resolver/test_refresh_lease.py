"""The refresher runs once per interval across processes on one Redis (a lease), not once each.

Two resolvers stand for two bot processes: each its own storage connection to the same Redis
namespace, the same fake YouTube. One entry is used and expiring soon.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.matcher import SpotdlFinder
from core.refresher import REFRESH_LEASE
from core.resolver import Resolver, ResolverConfig
from core.youtube import YouTube
from storage import Storage, TokenCipher, open_storage
from tests.conftest import storage_url_for
from tests.fakes.youtube import FakeYouTube
from tests.resolver.conftest import RICK, Clock, Lookup


async def resolver_on(
    store: Storage, fake_youtube: FakeYouTube, clock: Clock, *, leases: bool = True
) -> Resolver:
    youtube = YouTube(base_url=fake_youtube.base_url)
    finder = SpotdlFinder(
        youtube, loop=asyncio.get_running_loop(), ytmusic_client_factory=fake_youtube.ytmusic_client
    )
    return Resolver(
        store,
        finder,
        youtube,
        Lookup(),
        config=ResolverConfig(workers=2, refresh_interval_s=60.0),
        clock=clock,
        leases=store if leases else None,
    )


@pytest.fixture
async def two_stores(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[list[Storage]]:
    url = storage_url_for("redis", tmp_path, request)
    key = TokenCipher.generate()
    stores = [await open_storage(url, key) for _ in range(2)]
    yield stores
    for store in stores:
        await store.aclose()


@pytest.mark.parametrize("leases", [True, False])
async def test_two_resolvers_on_one_redis_refresh_an_entry_once(
    two_stores: list[Storage], fake_youtube: FakeYouTube, leases: bool
) -> None:
    clock = Clock()
    resolvers = [await resolver_on(s, fake_youtube, clock, leases=leases) for s in two_stores]
    try:
        fake_youtube.stream_lifetime = 600  # usable, but inside refresh_ahead_s
        first = await resolvers[0].resolve(RICK)
        fake_youtube.stream_lifetime = 6 * 3600
        fake_youtube.counts.reset()

        # Both processes' timers fire at once.
        passes = await asyncio.gather(*(r.refresh_turn() for r in resolvers))

        entry = await two_stores[1].get_stream(RICK.id)
        assert entry is not None and entry.expires_at > first.expires_at + 3600
        if leases:
            assert sorted(passes) == [0, 1]
            assert fake_youtube.counts.page_fetches == 1  # one re-extraction, not one each
        else:  # what the lease prevents (and so what the test above can catch)
            assert passes == [1, 1]
            assert fake_youtube.counts.page_fetches == 2
    finally:
        for resolver in resolvers:
            await resolver.aclose()


async def test_the_lease_lasts_one_interval_then_the_next_timer_takes_it(
    two_stores: list[Storage], fake_youtube: FakeYouTube
) -> None:
    clock = Clock()
    first, second = [await resolver_on(s, fake_youtube, clock) for s in two_stores]
    try:
        await first.refresh_turn()
        assert await second.refresh_turn() == 0 and fake_youtube.counts.page_fetches == 0
        # Held for the interval and not released: the other takes it once it lapses.
        assert not await two_stores[1].acquire_lease(REFRESH_LEASE, "someone", 1.0)
    finally:
        for resolver in (first, second):
            await resolver.aclose()

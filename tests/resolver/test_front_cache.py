"""The resolver's in-process front cache, over real storage (SQLite: the `cache` fixture).

Storage is wrapped only to count reads: whether a hit touched storage is what is under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from core.matcher import SpotdlFinder
from core.resolver import Resolver, ResolverConfig
from core.youtube import YouTube
from storage.base import Storage
from storage.records import CachedStream
from tests.fakes.youtube import FakeYouTube
from tests.resolver.conftest import QUEEN, RICK, Clock, Lookup, eventually


class CountingReads:
    """Real storage, counting `get_stream` calls."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.reads = 0
        self.paused: asyncio.Event | None = None  # when set: answers wait until it is set
        self.waiting = False

    async def get_stream(self, track_id: str) -> CachedStream | None:
        self.reads += 1
        entry = await self._storage.get_stream(track_id)
        if self.paused is not None and not self.paused.is_set():
            self.waiting = True
            await self.paused.wait()
        return entry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


@pytest.fixture
def storage(cache: Storage) -> CountingReads:
    return CountingReads(cache)


MakeResolver = Callable[..., Resolver]


@pytest.fixture
async def make_resolver(
    fake_youtube: FakeYouTube, storage: CountingReads, clock: Clock, lookup: Lookup
) -> AsyncIterator[MakeResolver]:
    made: list[Resolver] = []

    def make(**config: Any) -> Resolver:
        youtube = YouTube(base_url=fake_youtube.base_url)
        finder = SpotdlFinder(
            youtube,
            loop=asyncio.get_running_loop(),
            ytmusic_client_factory=fake_youtube.ytmusic_client,
        )
        settings = ResolverConfig(workers=2, timeout_s=20.0, **config)
        resolver = Resolver(storage, finder, youtube, lookup, config=settings, clock=clock)
        made.append(resolver)
        return resolver

    yield make
    for resolver in made:
        await resolver.aclose()


async def test_hit_is_served_from_memory_and_its_access_still_recorded(
    make_resolver: MakeResolver, storage: CountingReads, clock: Clock
) -> None:
    resolver = make_resolver()
    first = await resolver.resolve(RICK)
    reads = storage.reads
    clock.advance(5)
    second = await resolver.resolve(RICK)
    assert second == first
    assert storage.reads == reads  # no storage round trip
    assert resolver.stats.hits == 1 and resolver.stats.memory_hits == 1

    await resolver.flush_access()
    stored = await storage.get_stream(RICK.id)
    assert stored is not None
    assert stored.last_access == pytest.approx(clock(), abs=1)
    assert stored.last_access > first.last_access + 4


async def test_entry_near_expiry_is_not_served_from_memory(
    make_resolver: MakeResolver, storage: CountingReads, clock: Clock, fake_youtube: FakeYouTube
) -> None:
    resolver = make_resolver(front_ttl_s=3600, refresh_ahead_s=0)
    fake_youtube.stream_lifetime = 600
    first = await resolver.resolve(RICK)
    pages = fake_youtube.counts.page_fetches
    # Less than min_validity_s (120 s) of life left: not a hit, from memory or storage.
    clock.advance(600 - 100)
    fake_youtube.stream_lifetime = 6 * 3600
    second = await resolver.resolve(RICK)
    assert second.stream_url != first.stream_url
    assert fake_youtube.counts.page_fetches == pages + 1  # re-extracted
    assert resolver.stats.memory_hits == 0
    # The re-extraction replaced the copy in memory.
    reads = storage.reads
    assert await resolver.resolve(RICK) == second
    assert storage.reads == reads


async def test_memory_copy_is_checked_against_storage_after_its_ttl(
    make_resolver: MakeResolver, storage: CountingReads, clock: Clock
) -> None:
    resolver = make_resolver(front_ttl_s=30)
    first = await resolver.resolve(RICK)
    clock.advance(10)
    await resolver.resolve(RICK)
    reads = storage.reads
    clock.advance(25)  # 35 s after the copy was made
    assert await resolver.resolve(RICK) == first
    assert storage.reads == reads + 1
    assert resolver.stats.memory_hits == 1


async def test_force_bypasses_memory_and_replaces_the_copy(
    make_resolver: MakeResolver, storage: CountingReads, fake_youtube: FakeYouTube
) -> None:
    resolver = make_resolver()
    first = await resolver.resolve(RICK)
    searches = fake_youtube.counts.searches
    forced = await resolver.resolve(RICK, force=True)
    assert fake_youtube.counts.searches > searches  # a real re-match, not the copy
    assert forced.stream_url != first.stream_url
    reads = storage.reads
    assert await resolver.resolve(RICK) == forced
    assert storage.reads == reads  # the copy in memory is the forced result


async def test_background_refresh_replaces_the_copy(
    make_resolver: MakeResolver, fake_youtube: FakeYouTube, storage: CountingReads
) -> None:
    resolver = make_resolver(refresh_ahead_s=1800)
    fake_youtube.stream_lifetime = 1000  # expires within refresh_ahead_s: a hit refreshes it
    first = await resolver.resolve(RICK)
    fake_youtube.stream_lifetime = 6 * 3600
    assert await resolver.resolve(RICK) == first  # the hit, which starts the refresh
    await eventually(lambda: resolver.stats.extractions == 2)
    await eventually(lambda: _flights_done(resolver))
    reads = storage.reads
    refreshed = await resolver.resolve(RICK)
    assert refreshed.stream_url != first.stream_url
    assert refreshed.expires_at > first.expires_at
    assert storage.reads == reads


def _flights_done(resolver: Resolver) -> bool:
    return resolver.stats.refreshes == 1 and not resolver._flights


async def test_entry_evicted_from_storage_is_served_until_the_ttl(
    make_resolver: MakeResolver, storage: CountingReads, clock: Clock, fake_youtube: FakeYouTube
) -> None:
    """The documented choice: storage eviction reaches this process within front_ttl_s."""
    resolver = make_resolver(front_ttl_s=30)
    first = await resolver.resolve(RICK)
    assert await storage.delete_stream(RICK.id)
    searches = fake_youtube.counts.searches
    assert await resolver.resolve(RICK) == first  # still playable, so still served
    assert fake_youtube.counts.searches == searches
    clock.advance(31)
    again = await resolver.resolve(RICK)
    assert fake_youtube.counts.searches > searches  # storage said "gone": resolved anew
    assert again.stream_url != first.stream_url


async def test_memory_is_bounded_least_recently_used_first(
    make_resolver: MakeResolver, storage: CountingReads
) -> None:
    resolver = make_resolver(front_entries=1)
    await resolver.resolve(RICK)
    await resolver.resolve(QUEEN)  # pushes RICK out of memory
    reads = storage.reads
    await resolver.resolve(QUEEN)
    assert storage.reads == reads
    await resolver.resolve(RICK)
    assert storage.reads == reads + 1
    assert resolver.stats.hits == 2 and resolver.stats.memory_hits == 1


async def test_front_cache_can_be_turned_off(
    make_resolver: MakeResolver, storage: CountingReads
) -> None:
    resolver = make_resolver(front_entries=0)
    await resolver.resolve(RICK)
    reads = storage.reads
    await resolver.resolve(RICK)
    await resolver.resolve(RICK)
    assert storage.reads == reads + 2
    assert resolver.stats.memory_hits == 0


async def test_storage_read_racing_a_newer_write_does_not_replace_the_copy(
    make_resolver: MakeResolver, storage: CountingReads, clock: Clock
) -> None:
    resolver = make_resolver(front_ttl_s=30)
    first = await resolver.resolve(RICK)
    clock.advance(31)  # the next hit asks storage again
    storage.paused = asyncio.Event()
    slow_hit = asyncio.create_task(resolver.resolve(RICK))
    await eventually(lambda: storage.waiting)  # it has read `first` and not returned yet
    forced = await resolver.resolve(RICK, force=True)
    storage.paused.set()
    assert await slow_hit == first  # that answer was right when it was read
    reads = storage.reads
    assert await resolver.resolve(RICK) == forced  # but the newer copy stays in memory
    assert storage.reads == reads


async def test_cached_answers_as_resolve_claimed_would_without_awaiting(
    make_resolver: MakeResolver, storage: CountingReads, clock: Clock
) -> None:
    """`cached` is POST /song's fast path: for each state it either gives exactly what
    `resolve_claimed` gives at once (and counts it the same), or None (take the full path)."""
    resolver = make_resolver(front_ttl_s=30)
    assert resolver.cached(RICK.id) is None  # cold: the full path resolves it
    resolved = await resolver.resolve_claimed(RICK)
    reads, hits = storage.reads, resolver.stats.hits

    clock.advance(5)
    fast = resolver.cached(RICK.id)
    assert fast == resolved == await resolver.resolve_claimed(RICK)
    assert storage.reads == reads  # neither path read storage
    assert resolver.stats.hits == hits + 2 and resolver.stats.memory_hits == 2
    await resolver.flush_access()
    stored = await storage.get_stream(RICK.id)
    assert stored is not None and stored.last_access == pytest.approx(clock(), abs=1)

    assert resolver.cached(QUEEN.id) is None  # never asked for
    clock.advance(31)  # past the front cache's ttl: storage must be asked again
    assert resolver.cached(RICK.id) is None
    reread = await resolver.resolve_claimed(RICK)  # with the access time flushed above
    assert reread.stream_url == resolved.stream_url
    assert resolver.cached(RICK.id) == reread
    await resolver.aclose()
    assert resolver.cached(RICK.id) is None  # a closed resolver refuses on the full path


async def test_cached_gives_way_to_a_running_resolution(
    make_resolver: MakeResolver, clock: Clock, fake_youtube: FakeYouTube
) -> None:
    resolver = make_resolver(front_ttl_s=3600, refresh_ahead_s=0)
    fake_youtube.stream_lifetime = 600
    first = await resolver.resolve_claimed(RICK)
    clock.advance(600 - 100)  # too little life left: the full path re-extracts it
    fake_youtube.stream_lifetime = 6 * 3600
    misses = resolver.stats.misses
    refreshing = asyncio.create_task(resolver.resolve_claimed(RICK))
    await eventually(lambda: resolver.stats.misses > misses)  # its resolution is running
    assert resolver.cached(RICK.id) is None
    fresh = await refreshing
    assert fresh.stream_url != first.stream_url
    await asyncio.sleep(0)  # the finished resolution leaves the flights
    assert resolver.cached(RICK.id) == fresh


async def test_cached_is_none_without_a_front_cache(make_resolver: MakeResolver) -> None:
    resolver = make_resolver(front_entries=0)
    await resolver.resolve_claimed(RICK)
    assert resolver.cached(RICK.id) is None  # every hit reads storage, on the full path

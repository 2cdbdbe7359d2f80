"""Every resolver path, with the real spotDL matching and the real yt-dlp against the fake."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from core.errors import ExtractionFailed, NoMatch, Overloaded, ResolveTimeout, SearchFailed
from core.resolver import Resolver, ResolverConfig
from core.resolver_factory import build_resolver
from core.tracks import InvalidTrackId
from storage.base import StreamCache
from tests.fakes.youtube import FakeYouTube
from tests.resolver.conftest import (
    AHA,
    AHA_VIDEO,
    BOTH,
    DEMO,
    DEMO_VIDEO,
    NOBODY,
    QUEEN,
    QUEEN_VIDEO,
    RICK,
    RICK_VIDEO,
    Clock,
    Lookup,
    eventually,
)


def expire_of(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["expire"][0])


@BOTH
async def test_cold_resolve_searches_once_extracts_once_and_caches(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache
) -> None:
    entry = await resolver.resolve(RICK)

    assert entry.track_id == RICK.id
    assert entry.video_url == RICK_VIDEO  # canonical, whatever served it
    assert entry.stream_url.startswith(fake_youtube.base_url + "/videoplayback/dQw4w9WgXcQ.wav")
    assert entry.expires_at == expire_of(entry.stream_url)
    assert entry.duration_s == 213
    assert await cache.get_stream(RICK.id) == entry
    # The ISRC search alone found it: one YouTube Music query, one page fetch.
    assert fake_youtube.counts.ytmusic_searches == 1
    assert fake_youtube.counts.page_fetches == 1
    stats = resolver.stats
    assert (stats.misses, stats.hits, stats.searches, stats.extractions) == (1, 0, 1, 1)

    # With the headers it was extracted with (the relay sends them): yt-dlp's User-Agent.
    headers = dict(entry.http_headers)
    async with aiohttp.ClientSession() as http, http.get(entry.stream_url, headers=headers) as r:
        body = await r.read()
    response = r
    assert response.status == 200
    assert response.content_type == "audio/wav"
    assert body[:4] == b"RIFF"


@BOTH
async def test_cache_hit_touches_neither_youtube_nor_storage_writes(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache, clock: Clock
) -> None:
    first = await resolver.resolve(RICK)
    fake_youtube.counts.reset()
    clock.advance(30)

    again = await resolver.resolve(RICK)

    assert again == first
    assert await cache.get_stream(RICK.id) == first  # last_access not written (yet)
    assert fake_youtube.counts.searches == fake_youtube.counts.page_fetches == 0
    assert resolver.stats.hits == 1
    assert resolver.stats.refreshes == 0  # six hours left: nothing to refresh


@BOTH
async def test_expired_stream_url_reruns_only_the_extraction(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache, lookup: Lookup
) -> None:
    fake_youtube.stream_lifetime = 60  # below min_validity_s: expired as soon as it is cached
    first = await resolver.resolve_id(RICK.id)
    fake_youtube.counts.reset()
    fake_youtube.stream_lifetime = 6 * 3600

    second = await resolver.resolve_id(RICK.id)

    assert fake_youtube.counts.searches == 0
    assert fake_youtube.counts.page_fetches == 1
    assert second.video_url == first.video_url
    assert second.stream_url != first.stream_url
    assert second.expires_at > first.expires_at
    assert await cache.get_stream(RICK.id) == second
    assert lookup.calls == [RICK.id]  # metadata only for the search, not the re-extraction
    assert (resolver.stats.searches, resolver.stats.extractions) == (1, 2)


async def test_force_searches_again_and_takes_the_new_match(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    first = await resolver.resolve(QUEEN)
    assert first.video_url == QUEEN_VIDEO
    fake_youtube.remove_video("fJ9rUzIMcZQ")
    fake_youtube.add_video("queenRemstr", "Bohemian Rhapsody", ["Queen"], 355)
    fake_youtube.counts.reset()

    assert (await resolver.resolve(QUEEN)).video_url == QUEEN_VIDEO  # cached, no search
    forced = await resolver.resolve(QUEEN, force=True)

    assert forced.video_url == "https://music.youtube.com/watch?v=queenRemstr"
    assert fake_youtube.counts.ytmusic_searches >= 1
    assert fake_youtube.counts.page_fetches == 1
    assert resolver.stats.searches == 2


async def test_isrc_match_wins_even_when_the_title_differs(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    # A localized title shares no word with the video: only the ISRC can find it.
    localized = replace(RICK, name="Nunca Te Vou Abandonar")
    entry = await resolver.resolve(localized)
    assert entry.video_url == RICK_VIDEO
    assert fake_youtube.counts.ytmusic_searches == 1

    with pytest.raises(NoMatch):
        await resolver.resolve(replace(localized, id="3" * 22, isrc=""))


async def test_spotdl_ranking_rejects_wrong_artist_and_wrong_length_decoys(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    # No ISRC: the text search returns the song and both decoys; spotDL's ranking decides.
    entry = await resolver.resolve(replace(RICK, isrc=""))
    assert entry.video_url == RICK_VIDEO
    assert entry.score >= 80
    assert fake_youtube.counts.rss_searches == 0


async def test_match_outside_duration_tolerance_falls_back_to_ytdlp_search(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    # spotDL accepts the 11 s longer edit; our tolerance (7 s) does not.
    entry = await resolver.resolve(AHA)
    assert entry.video_url == AHA_VIDEO
    assert entry.duration_s == 226
    assert fake_youtube.counts.rss_searches == 1
    assert fake_youtube.counts.page_fetches == 1


async def test_spotdl_finding_nothing_falls_back_to_ytdlp_search(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    entry = await resolver.resolve(DEMO)
    assert entry.video_url == DEMO_VIDEO
    assert entry.stream_url.startswith(fake_youtube.base_url + "/videoplayback/demoUpload1.wav")
    assert fake_youtube.counts.ytmusic_searches >= 1
    assert fake_youtube.counts.rss_searches == 1


@BOTH
async def test_no_match_is_negatively_cached_until_retry_after(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache, clock: Clock
) -> None:
    with pytest.raises(NoMatch) as first:
        await resolver.resolve(NOBODY)
    assert first.value.http_status == 404
    failure = await cache.get_failure(NOBODY.id, clock())
    assert failure is not None
    assert failure.reason == "no_match"
    searched = fake_youtube.counts.searches

    with pytest.raises(NoMatch):
        await resolver.resolve(NOBODY)
    assert fake_youtube.counts.searches == searched
    assert resolver.stats.negative_hits == 1
    assert resolver.stats.failures == 1

    fake_youtube.add_video("nobodyFound", "Unfindable Song", ["Nobody Knows"], 200)
    clock.advance(resolver.config.failure_ttl_s + 1)
    entry = await resolver.resolve(NOBODY)
    assert entry.video_url == "https://music.youtube.com/watch?v=nobodyFound"


@BOTH
async def test_force_bypasses_and_clears_the_negative_cache(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache, clock: Clock
) -> None:
    with pytest.raises(NoMatch):
        await resolver.resolve(NOBODY)
    fake_youtube.add_video("nobodyFound", "Unfindable Song", ["Nobody Knows"], 200)

    entry = await resolver.resolve(NOBODY, force=True)

    assert entry.video_url == "https://music.youtube.com/watch?v=nobodyFound"
    assert await cache.get_failure(NOBODY.id, clock()) is None


async def test_extraction_failure_is_a_502_and_negatively_cached(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache, clock: Clock
) -> None:
    fake_youtube.page_status = 500
    with pytest.raises(ExtractionFailed) as raised:
        await resolver.resolve(QUEEN)
    assert raised.value.http_status == 502
    failure = await cache.get_failure(QUEEN.id, clock())
    assert failure is not None
    assert failure.reason == "extraction_failed"
    assert await cache.get_stream(QUEEN.id) is None

    fake_youtube.page_status = 200
    with pytest.raises(ExtractionFailed):  # from the negative cache
        await resolver.resolve(QUEEN)
    assert fake_youtube.counts.page_fetches == 1


async def test_failing_search_backends_are_a_502_not_a_no_match(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    fake_youtube.search_status = 500
    with pytest.raises(SearchFailed) as raised:
        await resolver.resolve(QUEEN)
    assert raised.value.http_status == 502


async def test_vanished_cached_video_is_replaced_by_a_new_search(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    fake_youtube.stream_lifetime = 60
    await resolver.resolve(QUEEN)
    fake_youtube.stream_lifetime = 6 * 3600
    fake_youtube.remove_video("fJ9rUzIMcZQ")
    fake_youtube.add_video("queenRemstr", "Bohemian Rhapsody", ["Queen"], 355)

    entry = await resolver.resolve(QUEEN)

    assert entry.video_url == "https://music.youtube.com/watch?v=queenRemstr"
    assert resolver.stats.searches == 2


@pytest.mark.parametrize("config", [ResolverConfig(timeout_s=0.3)])
async def test_slow_youtube_times_out_but_the_resolution_carries_on(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache
) -> None:
    fake_youtube.page_delay = 1.0
    with pytest.raises(ResolveTimeout) as raised:
        await resolver.resolve(QUEEN)
    assert raised.value.http_status == 504

    async def cached() -> bool:
        return await cache.get_stream(QUEEN.id) is not None

    await eventually(cached)
    fake_youtube.counts.reset()
    await resolver.resolve(QUEEN)
    assert fake_youtube.counts.page_fetches == 0


@BOTH
async def test_200_concurrent_cold_requests_share_one_resolution(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache
) -> None:
    fake_youtube.search_delay = 0.05  # keep the flight open while the requests pile up
    entries = await asyncio.gather(*(resolver.resolve(RICK) for _ in range(200)))

    assert len({e.stream_url for e in entries}) == 1
    stats = resolver.stats
    assert (stats.searches, stats.extractions) == (1, 1)
    assert stats.misses == 200
    assert stats.coalesced == 199
    assert fake_youtube.counts.ytmusic_searches == 1
    assert fake_youtube.counts.page_fetches == 1


@BOTH
async def test_a_forced_request_does_not_reuse_a_plain_resolution(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    fake_youtube.search_delay = 0.05
    plain, forced = await asyncio.gather(resolver.resolve(QUEEN), resolver.resolve(QUEEN, True))
    assert plain.video_url == forced.video_url == QUEEN_VIDEO
    assert resolver.stats.searches == 2


@pytest.mark.parametrize("config", [ResolverConfig(max_in_flight=1)])
async def test_too_many_distinct_resolutions_is_overloaded(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    fake_youtube.search_delay = 0.3
    first = asyncio.create_task(resolver.resolve(RICK))
    await eventually(lambda: fake_youtube.counts.ytmusic_searches == 1)
    with pytest.raises(Overloaded) as raised:
        await resolver.resolve(QUEEN)
    assert raised.value.http_status == 503
    assert (await first).video_url == RICK_VIDEO


@BOTH
@pytest.mark.parametrize("max_streams", [2])
async def test_cache_is_bounded_and_evicts_the_least_recently_accessed(
    resolver: Resolver, cache: StreamCache, clock: Clock
) -> None:
    await resolver.resolve(RICK)
    clock.advance(1)
    await resolver.resolve(QUEEN)
    clock.advance(1)
    await resolver.resolve(RICK)  # a hit: RICK is now more recent than QUEEN
    await resolver.flush_access()
    clock.advance(1)

    await resolver.resolve(DEMO)

    assert await cache.count_streams() == 2
    assert await cache.get_stream(QUEEN.id) is None
    assert await cache.get_stream(RICK.id) is not None
    assert await cache.get_stream(DEMO.id) is not None


@BOTH
async def test_last_access_writes_are_deferred_and_batched(
    resolver: Resolver, cache: StreamCache, clock: Clock
) -> None:
    stored = await resolver.resolve(RICK)
    clock.advance(30)
    await resolver.resolve(RICK)
    await resolver.resolve(RICK)

    unchanged = await cache.get_stream(RICK.id)
    assert unchanged is not None
    assert unchanged.last_access == stored.last_access  # hits wrote nothing

    await resolver.flush_access()
    touched = await cache.get_stream(RICK.id)
    assert touched is not None
    assert touched.last_access == pytest.approx(clock(), abs=1)


@BOTH
async def test_pending_access_times_are_written_on_close(
    resolver: Resolver, cache: StreamCache, clock: Clock
) -> None:
    stored = await resolver.resolve(RICK)
    clock.advance(30)
    await resolver.resolve(RICK)
    await resolver.aclose()
    touched = await cache.get_stream(RICK.id)
    assert touched is not None
    assert touched.last_access >= stored.last_access + 30


@BOTH
@pytest.mark.parametrize("config", [ResolverConfig(touch_interval_s=0.05)])
async def test_the_timer_writes_access_times(
    resolver: Resolver, cache: StreamCache, clock: Clock
) -> None:
    stored = await resolver.resolve(RICK)
    await resolver.start()
    clock.advance(30)
    await resolver.resolve(RICK)

    async def written() -> bool:
        entry = await cache.get_stream(RICK.id)
        return entry is not None and entry.last_access > stored.last_access

    await eventually(written)


@BOTH
async def test_hit_expiring_soon_is_returned_and_refreshed_in_the_background(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache
) -> None:
    fake_youtube.stream_lifetime = 600  # usable, but inside refresh_ahead_s
    first = await resolver.resolve(RICK)
    fake_youtube.stream_lifetime = 6 * 3600

    hit = await resolver.resolve(RICK)
    assert hit == first  # returned at once, the old URL still works

    async def refreshed() -> bool:
        entry = await cache.get_stream(RICK.id)
        return entry is not None and entry.stream_url != first.stream_url

    await eventually(refreshed)
    assert fake_youtube.counts.ytmusic_searches == 1  # extraction only
    assert fake_youtube.counts.page_fetches == 2
    assert resolver.stats.refreshes == 1


@BOTH
async def test_refresher_reextracts_recently_used_entries_before_they_expire(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache, clock: Clock
) -> None:
    fake_youtube.stream_lifetime = 600
    expiring = await resolver.resolve(RICK)
    fake_youtube.stream_lifetime = 6 * 3600
    fresh = await resolver.resolve(QUEEN)
    fake_youtube.counts.reset()

    assert await resolver.refresh_expiring() == 1

    refreshed = await cache.get_stream(RICK.id)
    assert refreshed is not None
    assert refreshed.expires_at > expiring.expires_at + 3600
    assert refreshed.video_url == expiring.video_url
    untouched = await cache.get_stream(QUEEN.id)
    assert untouched is not None
    assert untouched.stream_url == fresh.stream_url  # hours left: not refreshed
    assert fake_youtube.counts.searches == 0
    assert fake_youtube.counts.page_fetches == 1


@BOTH
async def test_refresher_leaves_entries_nobody_used_lately(
    resolver: Resolver, fake_youtube: FakeYouTube, clock: Clock
) -> None:
    fake_youtube.stream_lifetime = 600
    await resolver.resolve(RICK)
    clock.advance(resolver.config.refresh_recent_s + 60)
    fake_youtube.counts.reset()

    assert await resolver.refresh_expiring() == 0
    assert fake_youtube.counts.page_fetches == 0


@BOTH
@pytest.mark.parametrize("config", [ResolverConfig(refresh_interval_s=0.05)])
async def test_the_refresher_runs_on_its_timer(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache
) -> None:
    fake_youtube.stream_lifetime = 600
    first = await resolver.resolve(RICK)
    await resolver.start()

    async def refreshed() -> bool:
        entry = await cache.get_stream(RICK.id)
        return entry is not None and entry.expires_at > first.expires_at

    await eventually(refreshed)


async def test_resolve_id_asks_spotify_only_when_it_must_search(
    resolver: Resolver, lookup: Lookup
) -> None:
    await resolver.resolve(RICK)
    assert (await resolver.resolve_id(RICK.id)).video_url == RICK_VIDEO
    assert lookup.calls == []

    assert (await resolver.resolve_id(QUEEN.id)).video_url == QUEEN_VIDEO
    assert lookup.calls == [QUEEN.id]


async def test_resolve_id_rejects_what_is_not_a_track_id(resolver: Resolver) -> None:
    # The one track-id check every entry point shares (core.tracks.check_track_id).
    with pytest.raises(InvalidTrackId, match="22 letters and digits") as raised:
        await resolver.resolve_id("../../etc/passwd")
    assert getattr(raised.value, "http_status", None) == 400


async def test_closed_resolver_refuses_new_work(resolver: Resolver) -> None:
    await resolver.aclose()
    with pytest.raises(Overloaded):
        await resolver.resolve(RICK)


async def test_build_resolver_wires_spotdl_and_ytdlp_to_the_given_youtube(
    fake_youtube: FakeYouTube, cache: StreamCache, lookup: Lookup
) -> None:
    async with build_resolver(
        cache,
        lookup,
        youtube_base_url=fake_youtube.base_url,
        ytmusic_client_factory=fake_youtube.ytmusic_client,
    ) as resolver:  # start() warms both libraries up
        entry = await resolver.resolve_id(QUEEN.id)
    assert entry.video_url == QUEEN_VIDEO
    assert entry.stream_url.startswith(fake_youtube.base_url)

"""The PWA's stream lookup through the real composition root (bot.__main__.running).

Everything runs as in production — settings, storage (SQLite), SpotifyClient, the resolver
with real spotDL and yt-dlp, the aiohttp server on the bot's own port — pointed at the fakes:
fake Discord, fake Spotify (track metadata), fake YouTube (search, pages, audio).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from bot.__main__ import Running, running
from core.errors import Overloaded
from storage import open_storage
from tests.bot.conftest import VIDEO_ID, World
from tests.fakes.youtube import FakeYouTube
from tests.pwa import PWA_ORIGIN, TRACK_ID, track_body


@asynccontextmanager
async def game_night(world: World, youtube: FakeYouTube, **changes: Any) -> AsyncIterator[Running]:
    """Game Night as `python -m bot` runs it, with YOUTUBE_BASE_URL (and `changes`) set."""
    world.settings = dataclasses.replace(
        world.settings, youtube_base_url=youtube.base_url, **changes
    )
    async with running(
        world.settings,
        client_options={"guild_ready_timeout": 0.05},
        ytmusic_client_factory=youtube.ytmusic_client,
    ) as app:
        await world.discord.wait_ready()
        yield app


def base_url(world: World) -> str:
    return f"http://127.0.0.1:{world.settings.http_port}"


async def test_pwa_song_request_gets_a_stream_the_fake_youtube_plays(
    world: World, youtube: FakeYouTube
) -> None:
    async with game_night(world, youtube) as app, aiohttp.ClientSession() as http:
        headers = {"Origin": PWA_ORIGIN}
        async with http.post(f"{base_url(world)}/song", json=track_body(), headers=headers) as r:
            assert r.status == 200, await r.text()
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            text = await r.text()
        # The PWA strips every `"` from the body text and plays what is left.
        url = text.replace('"', "")
        assert text == f'"{url}"'
        assert url.startswith(f"{base_url(world)}/v1/relay/{TRACK_ID}?exp=")
        async with http.get(url) as audio:
            assert audio.status == 200
            assert await audio.read() == youtube.audio(VIDEO_ID)

        stored = await app.services.storage.get_stream(TRACK_ID)
        assert stored is not None
        assert stored.video_url.endswith(f"watch?v={VIDEO_ID}")
        # YouTube's own URL is bound to the bot's address: this "browser" is refused.
        async with http.get(stored.stream_url) as direct:
            assert direct.status == 403

        searches = youtube.counts.searches
        async with http.post(f"{base_url(world)}/song", json=track_body(), headers=headers) as r:
            assert r.status == 200
            assert (await r.text()).startswith(f'"{base_url(world)}/v1/relay/{TRACK_ID}?')
        assert youtube.counts.searches == searches  # served from the cache
        assert app.services.resolver.stats.hits == 2  # the relay's lookup, then this one


async def test_v1_track_by_id_asks_spotify_for_the_metadata(
    world: World, youtube: FakeYouTube
) -> None:
    track = world.spotify.catalog[0]
    youtube.add_video(
        "fakeCatalog",
        track.name,
        list(track.artists),
        round(track.duration_ms / 1000),
        isrc=track.isrc,
    )
    async with (
        game_night(world, youtube),
        aiohttp.ClientSession() as http,
        http.get(f"{base_url(world)}/v1/tracks/{track.id}") as r,
    ):
        assert r.status == 200, await r.text()
        described = await r.json()
    assert described["id"] == track.id
    assert described["video_url"].endswith("watch?v=fakeCatalog")
    assert described["stream_url"].startswith(f"{youtube.base_url}/videoplayback/fakeCatalog")
    assert world.spotify.count(f"/v1/tracks/{track.id}", method="GET") == 1


async def test_rate_limit_settings_reach_the_http_api(world: World, youtube: FakeYouTube) -> None:
    async with (
        game_night(world, youtube, http_rate_per_s=0.001, http_rate_burst=2),
        aiohttp.ClientSession() as http,
    ):
        statuses = []
        for _ in range(3):
            async with http.post(f"{base_url(world)}/song", json=track_body()) as r:
                statuses.append(r.status)
    assert statuses == [200, 200, 429]


async def test_shutdown_closes_the_resolver_before_storage(
    world: World, youtube: FakeYouTube
) -> None:
    async with game_night(world, youtube) as app, aiohttp.ClientSession() as http:
        for _ in range(2):  # a resolution, then a hit whose access time is only noted
            async with http.post(f"{base_url(world)}/song", json=track_body()) as r:
                assert r.status == 200
        resolver = app.services.resolver
        hit_at = time.time()
    with pytest.raises(Overloaded):
        await resolver.resolve_id(TRACK_ID)
    # The resolver wrote the noted access time on its way out, while storage was still open.
    store = await open_storage(world.settings.storage_url, world.settings.cipher())
    try:
        stored = await store.get_stream(TRACK_ID)
    finally:
        await store.aclose()
    assert stored is not None
    assert stored.last_access > stored.resolved_at
    assert stored.last_access <= hit_at

"""Fixtures for the HTTP API tests: the app on a real socket, wired to the real Resolver, real
SQLite storage, the fake YouTube (spotDL and yt-dlp talk to it for real) and the fake Spotify
(the real SpotifyClient asks it for a track's own metadata: the resolver's authority).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.services import Streams, open_spotify_and_resolver
from bot.web import RateLimit, create_app
from bot.web.services import AudioRoute, RelayConfig
from bot.web.signing import RelaySigner
from core.resolver import Resolver, ResolverConfig
from core.spotify import SpotifyClient, SpotifyConfig
from core.youtube import YouTubeConfig
from storage import open_storage
from storage.base import Storage
from storage.crypto import TokenCipher
from storage.records import CachedStream
from tests.fakes.spotify import FakeSpotify
from tests.fakes.spotify_catalog import FakeTrack
from tests.fakes.youtube import BOT_SIDE_ADDRESS, FakeYouTube
from tests.pwa import PWA_ORIGIN, PWA_TRACK, add_pwa_video
from tests.redis_proc import free_port

# Spotify's own record of the track the PWA asks for (tests/pwa.py's body describes it too).
RELAY_SECRET = b"web-tests-relay-secret-0123456789"
RICK = PWA_TRACK

VIDEO_ID = "rickroll001"


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    storage: Storage
    resolver: Resolver
    spotify: FakeSpotify
    signer: RelaySigner
    spotify_client: SpotifyClient

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def post_song(self, body: dict[str, Any]) -> Any:
        return await self.client.post(
            "/song", json=body, headers={"Origin": PWA_ORIGIN, "Content-Type": "application/json"}
        )


async def seed_stream(api: Api, track_id: str, stream_url: str) -> None:
    """Put a cache entry in storage, as an earlier resolution would have."""
    now = time.time()
    await api.storage.put_stream(
        CachedStream(
            track_id=track_id,
            video_url=f"https://music.youtube.com/watch?v={VIDEO_ID}",
            stream_url=stream_url,
            expires_at=now + 6 * 3600,
            resolved_at=now,
            last_access=now,
            title="Never Gonna Give You Up",
            duration_s=213,
        )
    )


@pytest.fixture
async def youtube() -> AsyncIterator[FakeYouTube]:
    async with FakeYouTube() as fake:
        yield fake


@pytest.fixture
def catalog(youtube: FakeYouTube) -> None:
    add_pwa_video(youtube, VIDEO_ID)
    youtube.add_video("decoy000001", "Never Gonna Give You Up (live)", ["Rick Astley"], 260)


# On Spotify, but YouTube has nothing like it.
UNFINDABLE = FakeTrack(
    id="0000000000000000000000",
    name="Unfindable Song",
    artists=("Nobody",),
    album="",
    duration_ms=200_000,
    isrc="",
    album_id="0000000000000000000001",
    artist_ids=("0000000000000000000002",),
)


@pytest.fixture
async def spotify() -> AsyncIterator[FakeSpotify]:
    async with FakeSpotify(catalog=[RICK, UNFINDABLE]) as fake:
        yield fake


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def api_factory(
    youtube: FakeYouTube, spotify: FakeSpotify, tmp_path: Path
) -> AsyncIterator[ApiFactory]:
    async with AsyncExitStack() as stack:
        count = 0
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def make(
            *,
            cors_origins: tuple[str, ...] = ("*",),
            rate_limit: RateLimit | None = None,
            extend: Callable[[web.Application], None] | None = None,
            raw_song_urls: bool = False,
            relay_ttl_s: float = 3600.0,
            proxy: str | None = None,
            resolver_config: ResolverConfig | None = None,
            daily_budget: int | None = None,
        ) -> Api:
            nonlocal count
            count += 1
            storage = await open_test_storage(stack, tmp_path / f"api{count}.db")
            # The bot's side connects from BOT_SIDE_ADDRESS, so the fake's IP binding refuses
            # the raw stream URLs to a "browser" (this test, on 127.0.0.1).
            streams = Streams(
                YouTubeConfig(
                    base_url=youtube.base_url, source_address=BOT_SIDE_ADDRESS, proxy=proxy
                ),
                resolver_config or ResolverConfig(),
                youtube.ytmusic_client,
            )
            config = SpotifyConfig(
                client_id=spotify.app.client_id,
                client_secret=spotify.app.client_secret,
                redirect_uri="http://127.0.0.1:1/spotify/callback",
                api_base=spotify.base,
                accounts_base=spotify.base,
                **({} if daily_budget is None else {"daily_budget": daily_budget}),
            )
            client, resolver = await open_spotify_and_resolver(
                stack, storage, http, config, streams
            )
            await resolver.start()
            port = free_port()
            signer = RelaySigner(RELAY_SECRET, f"http://127.0.0.1:{port}", ttl_s=relay_ttl_s)
            app = create_app(
                storage=storage,
                resolver=resolver,
                cors_origins=cors_origins,
                rate_limit=rate_limit or RateLimit(rate=1000, burst=1000),
                relay=RelayConfig(
                    signer, raw_song_urls, AudioRoute(proxy, source_address=BOT_SIDE_ADDRESS)
                ),
            )
            if extend is not None:
                extend(app)
            server = TestServer(app, host="127.0.0.1", port=port)
            test_client = await stack.enter_async_context(TestClient(server))
            return Api(test_client, storage, resolver, spotify, signer, client)

        yield make


@pytest.fixture
async def api(api_factory: ApiFactory) -> Api:
    return await api_factory()


async def open_test_storage(stack: AsyncExitStack, path: Path) -> Storage:
    storage = await open_storage(f"sqlite:///{path}", TokenCipher.generate())
    stack.push_async_callback(storage.aclose)
    return storage

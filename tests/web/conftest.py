"""Fixtures for the HTTP API tests: the app on a real socket, wired to the real Resolver, real
SQLite storage and the fake YouTube (spotDL and yt-dlp talk to it for real).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.web import RateLimit, create_app
from core.errors import NotFound
from core.matcher import SpotdlFinder
from core.resolver import Resolver
from core.tracks import TrackInfo
from core.youtube import YouTube
from storage import open_storage
from storage.base import Storage
from storage.crypto import TokenCipher
from storage.records import CachedStream
from tests.fakes.youtube import FakeYouTube
from tests.pwa import PWA_ORIGIN

VIDEO_ID = "rickroll001"


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    storage: Storage
    resolver: Resolver

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
    youtube.add_video(
        VIDEO_ID,
        "Never Gonna Give You Up",
        ["Rick Astley"],
        213,
        album="Whenever You Need Somebody",
        isrc="GBARL9300135",
    )
    youtube.add_video("decoy000001", "Never Gonna Give You Up (live)", ["Rick Astley"], 260)


async def _no_spotify(track_id: str) -> TrackInfo:
    # These tests send full metadata (or hit the cache); Spotify itself is another suite's fake.
    raise NotFound("Spotify does not know this track.")


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def api_factory(youtube: FakeYouTube, tmp_path: Path) -> AsyncIterator[ApiFactory]:
    async with AsyncExitStack() as stack:
        count = 0

        async def make(
            *,
            cors_origins: tuple[str, ...] = ("*",),
            rate_limit: RateLimit | None = None,
            extend: Callable[[web.Application], None] | None = None,
        ) -> Api:
            nonlocal count
            count += 1
            storage = await open_test_storage(stack, tmp_path / f"api{count}.db")
            adapter = YouTube(base_url=youtube.base_url)
            finder = SpotdlFinder(
                adapter,
                loop=asyncio.get_running_loop(),
                ytmusic_client_factory=youtube.ytmusic_client,
            )
            resolver = await stack.enter_async_context(
                Resolver(storage, finder, adapter, _no_spotify)
            )
            app = create_app(
                storage=storage,
                resolver=resolver,
                cors_origins=cors_origins,
                rate_limit=rate_limit or RateLimit(rate=1000, burst=1000),
            )
            if extend is not None:
                extend(app)
            client = await stack.enter_async_context(TestClient(TestServer(app)))
            return Api(client, storage, resolver)

        yield make


@pytest.fixture
async def api(api_factory: ApiFactory) -> Api:
    return await api_factory()


async def open_test_storage(stack: AsyncExitStack, path: Path) -> Storage:
    storage = await open_storage(f"sqlite:///{path}", TokenCipher.generate())
    stack.push_async_callback(storage.aclose)
    return storage

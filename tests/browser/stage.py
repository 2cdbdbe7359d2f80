"""The listen page's world for browser tests: the real app, Resolver, SQLite storage and
SpotifyClient against the fake Spotify and fake YouTube, plus a host whose snapshots are
written to storage the way the sync engine writes them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from bot.services import Streams, open_spotify_and_resolver
from bot.web import RateLimit, create_app
from bot.web.listen import add_listen_routes
from bot.web.services import AudioRoute, RelayConfig
from core.listen import ListenAlong, ListenConfig
from core.youtube import YouTubeConfig
from storage import open_storage
from storage.base import Storage
from storage.crypto import TokenCipher
from storage.records import HostSnapshot, ListenerState, Session
from tests.fakes.spotify import FakeSpotify
from tests.fakes.spotify_catalog import FakeTrack
from tests.fakes.youtube import BOT_SIDE_ADDRESS, FakeYouTube
from tests.spotify.conftest import config_for

GUILD, HOST, KIM = 4242, 100, 200
NAMES = {HOST: "Hana", KIM: "Kim"}
AUDIO_SECONDS = 60


@dataclass
class Host:
    """The host's player as the sync engine sees it: a snapshot stored on every change and,
    like the engine's rounds, re-stored every `every_s` with a little measurement noise."""

    storage: Storage
    snapshot: HostSnapshot | None = None
    every_s: float = 0.5
    rng: random.Random = field(default_factory=lambda: random.Random(3))

    def position_at(self, at: float) -> float:
        s = self.snapshot
        assert s is not None
        return s.position_ms + ((at - s.at) * 1000 if s.is_playing else 0)

    async def _store(self, snapshot: HostSnapshot) -> None:
        await self.storage.update_session(
            GUILD, {"snapshot": snapshot, "host_active_at": time.time()}
        )

    async def play(self, track: FakeTrack, position_ms: int) -> None:
        self.snapshot = HostSnapshot(track.id, position_ms, True, time.time(), track.duration_ms)
        await self._store(self.snapshot)

    async def seek(self, position_ms: int) -> None:
        assert self.snapshot is not None
        self.snapshot = HostSnapshot(
            self.snapshot.track_id, position_ms, self.snapshot.is_playing, time.time(),
            self.snapshot.duration_ms,
        )  # fmt: skip
        await self._store(self.snapshot)

    async def pause(self, playing: bool = False) -> None:
        assert self.snapshot is not None
        now = time.time()
        self.snapshot = HostSnapshot(
            self.snapshot.track_id, round(self.position_at(now)), playing, now,
            self.snapshot.duration_ms,
        )  # fmt: skip
        await self._store(self.snapshot)

    async def resume(self) -> None:
        await self.pause(playing=True)

    async def rounds(self) -> None:
        """Re-observe and store, like each engine round: position measured +-20 ms."""
        while True:
            await asyncio.sleep(self.every_s)
            s = self.snapshot
            if s is None:
                continue
            now = time.time()
            measured = round(self.position_at(now)) + self.rng.randint(-20, 20)
            await self._store(HostSnapshot(s.track_id, measured, s.is_playing, now, s.duration_ms))


@dataclass
class Stage:
    server: TestServer
    storage: Storage
    listen: ListenAlong
    spotify: FakeSpotify
    youtube: FakeYouTube
    host: Host
    tracks: list[FakeTrack]  # playable: each has a video on the fake YouTube
    missing: FakeTrack  # known to Spotify, nowhere on YouTube

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@asynccontextmanager
async def stage(tmp_path: Path) -> AsyncIterator[Stage]:
    async with AsyncExitStack() as stack:
        spotify = await stack.enter_async_context(FakeSpotify())
        youtube = FakeYouTube(audio_seconds=AUDIO_SECONDS)
        await stack.enter_async_context(youtube)
        tracks = list(spotify.catalog[:2])
        for n, track in enumerate(tracks):
            youtube.add_video(
                f"listen{n:05d}",
                track.name,
                track.artists,
                track.duration_ms // 1000,
                album=track.album,
                isrc=track.isrc,
            )
        storage = await open_storage(f"sqlite:///{tmp_path / 'listen.db'}", TokenCipher.generate())
        stack.push_async_callback(storage.aclose)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        # The bot's side (yt-dlp, the relay) connects from BOT_SIDE_ADDRESS; chromium, on
        # 127.0.0.1, is refused the raw stream URLs like a listener elsewhere would be.
        streams = Streams(
            YouTubeConfig(base_url=youtube.base_url, source_address=BOT_SIDE_ADDRESS),
            ytmusic_client_factory=youtube.ytmusic_client,
        )
        client, resolver = await open_spotify_and_resolver(
            stack, storage, http, config_for(spotify), streams
        )
        await resolver.start()
        listen = ListenAlong(storage, resolver, client, config=ListenConfig(poll_interval_s=0.25))
        stack.push_async_callback(listen.aclose)
        relay = replace(RelayConfig.private(), route=AudioRoute(source_address=BOT_SIDE_ADDRESS))
        app = create_app(
            storage=storage,
            resolver=resolver,
            rate_limit=RateLimit(rate=1000, burst=1000),
            relay=relay,
        )
        add_listen_routes(app, listen, names=lambda guild_id, user_id: NAMES.get(user_id))
        server = TestServer(app, host="127.0.0.1")
        await stack.enter_async_context(server)

        now = time.time()
        await storage.create_session(Session(GUILD, HOST, created_at=now, host_active_at=now))
        await storage.put_listener(GUILD, ListenerState(KIM, joined_at=now, updated_at=now))
        host = Host(storage)
        rounds = asyncio.create_task(host.rounds())
        try:
            yield Stage(server, storage, listen, spotify, youtube, host, tracks, spotify.catalog[5])
        finally:
            rounds.cancel()

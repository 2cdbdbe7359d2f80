"""Engine fixtures: the fake Spotify (real spotipy through SpotifyClient) and real SQLite."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from bot.services import shared_spotify
from core.spotify import SpotifyConfig
from core.sync.engine import EngineConfig
from core.sync.planner import SyncConfig
from core.sync.schedule import DriftConfig, PollConfig
from storage import TokenCipher, open_storage
from tests.fakes.spotify import FakeSpotify
from tests.sync.rig import Rig

# Quicker than the defaults so each scenario takes a second or two; the defaults are what the
# benchmarks measure.
TEST_CONFIG = EngineConfig(
    poll=PollConfig(interval_s=0.3, paused_s=0.4, idle_s=0.5),
    sync=SyncConfig(settle_s=0.8),
    drift=DriftConfig(interval_s=0.8, paused_interval_s=0.8, settle_s=0.8, calls_per_minute=600),
    status_interval_s=0.2,
    lease_ttl_s=1.5,
)


READ_LAG_S = 0.4  # under TEST_CONFIG's settle window, as the real lag is under the default's


def spotify_config(fake: FakeSpotify, **overrides: float) -> SpotifyConfig:
    return SpotifyConfig(
        fake.app.client_id,
        fake.app.client_secret,
        "http://127.0.0.1:9/spotify/callback",
        api_base=fake.base,
        accounts_base=fake.base,
        **overrides,  # type: ignore[arg-type]  # numeric knobs by name
    )


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with FakeSpotify() as fake, aiohttp.ClientSession() as http:
        fake.set_latency(0.02, jitter=0.01)
        fake.lag.read_lag = READ_LAG_S  # Spotify's read side lags its command side
        store = await open_storage(f"sqlite:///{tmp_path}/sync.db", TokenCipher.generate())
        client = shared_spotify(spotify_config(fake), store, http)
        world = Rig(fake, store, client, TEST_CONFIG)
        try:
            yield world
        finally:
            await asyncio.gather(*(engine.aclose() for engine in world.engines))
            await fake.stop()  # releases hung requests, so their threads finish
            await client.aclose()
            await store.aclose()


async def until(check: Callable[[], object], within: float = 8.0) -> None:
    """Wait for the engine to get somewhere (a generous bound; speed is for the benchmarks).
    `check` may be a coroutine function (e.g. reading storage)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "the engine did not get there in time"
        await asyncio.sleep(0.02)

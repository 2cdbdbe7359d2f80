"""#15: two SpotifyClients (as two processes would) on one real redis-server share the limits.

Each client opens its own connection pool to the session's redis-server, exactly what two bot
processes do; they share nothing in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.services import shared_spotify
from core.errors import QuotaHeld, RateLimited
from core.spotify import SpotifyClient
from storage import Storage, TokenCipher, open_storage
from storage.records import LinkStatus
from tests.conftest import storage_url_for
from tests.fakes.spotify import FakeSpotify
from tests.spotify.conftest import ALICE, config_for, link

pytestmark = pytest.mark.redis


@pytest.fixture
async def two(
    fake: FakeSpotify, http: aiohttp.ClientSession, tmp_path: object, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[SpotifyClient, SpotifyClient, Storage]]:
    url = storage_url_for("redis", tmp_path, request)  # type: ignore[arg-type]
    cipher = TokenCipher.generate()
    stores = [await open_storage(url, cipher) for _ in range(2)]
    clients = [shared_spotify(config_for(fake, max_rate_wait=0.5), s, http) for s in stores]
    yield clients[0], clients[1], stores[0]
    for client in clients:
        await client.aclose()
    for store in stores:
        await store.aclose()


async def test_a_retry_after_seen_by_one_process_holds_the_other(
    fake: FakeSpotify, two: tuple[SpotifyClient, SpotifyClient, Storage]
) -> None:
    first, second, store = two
    await link(store, fake, ALICE, "alice")
    fake.fail(429, retry_after=3, path="/v1/me/player/devices", times=1)
    with pytest.raises(RateLimited):
        await first.devices(ALICE)
    sent = len(fake.log)
    with pytest.raises(RateLimited) as raised:
        await second.playback(ALICE)  # never saw the 429 itself
    assert raised.value.retry_after > 2
    assert len(fake.log) == sent
    assert second.limiter.blocked_for > 2  # what the engine's `hold` reads


async def test_quota_exceeded_seen_by_one_process_holds_the_other(
    fake: FakeSpotify, two: tuple[SpotifyClient, SpotifyClient, Storage]
) -> None:
    first, second, store = two
    await link(store, fake, ALICE, "alice")
    fake.quota.exhaust()
    with pytest.raises(QuotaHeld) as seen:
        await first.devices(ALICE)
    sent = len(fake.log)
    with pytest.raises(QuotaHeld) as held:
        await second.playback(ALICE)
    assert len(fake.log) == sent
    assert held.value.resume_at == pytest.approx(seen.value.resume_at, abs=1)
    assert second.quota.status().held_until == pytest.approx(seen.value.resume_at, abs=1)


async def test_both_processes_spend_one_budget(
    fake: FakeSpotify, two: tuple[SpotifyClient, SpotifyClient, Storage]
) -> None:
    first, second, store = two
    await link(store, fake, ALICE, "alice")
    await asyncio.gather(*(c.devices(ALICE) for c in (first, second) for _ in range(5)))
    assert (await first.quota.refresh()).spent == 10
    assert (await second.quota.refresh()).spent == 10


async def test_twenty_concurrent_expired_token_calls_across_processes_refresh_once(
    fake: FakeSpotify, two: tuple[SpotifyClient, SpotifyClient, Storage]
) -> None:
    first, second, store = two
    fake.rotate_refresh_tokens = True  # a second refresh with the old token would be refused
    await link(store, fake, ALICE, "alice", expires_at=time.time() - 10)
    results = await asyncio.gather(*(c.devices(ALICE) for c in (first, second) for _ in range(10)))
    assert all(len(devices) == 1 for devices in results)
    refreshes = [
        r
        for r in fake.requests("/api/token")
        if (r.body or {}).get("grant_type") == "refresh_token"
    ]
    assert len(refreshes) == 1
    stored = await store.get_link(ALICE)
    assert stored is not None and stored.status == LinkStatus.OK

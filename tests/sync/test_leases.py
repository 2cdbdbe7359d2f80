"""Several processes on one Redis: exactly one loop per guild, and takeover when it dies.

Each "process" has its own Redis connection (open_storage) and its own lease holder id; they
share the fake Spotify, as two bot processes of one Spotify app would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.audience import commanded_here
from core.spotify import SpotifyClient, StoreLocks
from core.sync.supervisor import GuildEngines, SyncSupervisor
from storage import Storage, TokenCipher, open_storage
from tests.fakes.spotify import FakeSpotify
from tests.sync.conftest import TEST_CONFIG, spotify_config, until
from tests.sync.rig import Rig

GUILD, HOST, ANN, BEN = 9, 1, 2, 3


@pytest.fixture
async def redis_rig(redis_url: str) -> AsyncIterator[tuple[Rig, str, TokenCipher]]:
    url = f"{redis_url}?prefix=sync-{uuid.uuid4().hex}"
    cipher = TokenCipher.generate()
    async with FakeSpotify() as fake, aiohttp.ClientSession() as http:
        fake.set_latency(0.02, jitter=0.01)
        store = await open_storage(url, cipher)
        client = SpotifyClient(
            spotify_config(fake), store, http, counters=store, locks=StoreLocks(store)
        )
        rig = Rig(fake, store, client, TEST_CONFIG)
        try:
            yield rig, url, cipher
        finally:
            await asyncio.gather(*(engine.aclose() for engine in rig.engines))
            await fake.stop()
            await client.aclose()
            await store.aclose()


async def test_two_processes_run_one_loop_and_the_survivor_takes_over(
    redis_rig: tuple[Rig, str, TokenCipher],
) -> None:
    rig, url, cipher = redis_rig
    for uid, name in ((HOST, "host"), (ANN, "ann"), (BEN, "ben")):
        await rig.link(uid, name)
    await rig.session(GUILD, HOST, (ANN, BEN))
    queue = [t.id for t in rig.fake.catalog[:4]]
    host = rig.player(HOST)
    host.load(queue, position_ms=20_000)

    # Process A hears about the session (session_started) and starts its loop.
    store_a: Storage = await open_storage(url, cipher)
    engines_a = GuildEngines(lambda guild: rig.engine(guild, store=store_a, holder="A"))
    await engines_a.start(GUILD)
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))
    # Process B never heard of it: its rescan finds it and starts a loop, which waits.
    store_b: Storage = await open_storage(url, cipher)
    sync_b = SyncSupervisor(
        GuildEngines(lambda guild: rig.engine(guild, store=store_b, holder="B")),
        store_b,
        rescan_s=0.2,
    )
    await sync_b.start()
    try:
        await until(lambda: sync_b.engines.get(GUILD) is not None)
        engine_a, engine_b = engines_a.get(GUILD), sync_b.engines.get(GUILD)
        assert engine_a is not None and engine_b is not None

        host.next()
        await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))
        await asyncio.sleep(2 * TEST_CONFIG.lease_ttl_s)  # several lease periods, both running
        assert engine_a.calls["host_read"] > 0
        assert engine_b.calls.total() == 0  # exactly one loop talks to Spotify

        # Process A loses Redis: its lease is never renewed again. It goes on from memory only
        # while its lease is certainly still its own, then sends nothing (fencing).
        await store_a.aclose()
        await until(lambda: engine_b.lease.held, within=3 * TEST_CONFIG.lease_ttl_s)
        assert not engine_a.lease.valid()
        a_calls = engine_a.calls.total()
        host.next()
        await until(lambda: engine_b.calls["play"] >= 2, within=3 * TEST_CONFIG.lease_ttl_s)
        await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))
        assert rig.player(ANN).now().track_id == queue[2]
        assert engine_a.calls.total() == a_calls
    finally:
        await sync_b.aclose()
        await engines_a.aclose()
        await store_b.aclose()


async def test_a_clean_shutdown_hands_the_guild_over_within_a_second(
    redis_rig: tuple[Rig, str, TokenCipher],
) -> None:
    rig, url, cipher = redis_rig
    for uid, name in ((HOST, "host"), (ANN, "ann"), (BEN, "ben")):
        await rig.link(uid, name)
    await rig.session(GUILD, HOST, (ANN, BEN))
    queue = [t.id for t in rig.fake.catalog[:4]]
    host = rig.player(HOST)
    host.load(queue, position_ms=20_000)
    stores = [await open_storage(url, cipher) for _ in range(2)]
    # A long lease: only the release announcement can make the hand-over fast.
    slow = {"lease_ttl_s": 30.0}
    supervisors = [
        SyncSupervisor(
            GuildEngines(lambda g, s=store, h=name: rig.engine(g, store=s, holder=h, **slow)),
            store,
            store,
            rescan_s=0.2,
        )
        for store, name in zip(stores, "AB", strict=True)
    ]
    a, b = supervisors
    try:
        await a.start()
        await a.engines.start(GUILD)
        await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))
        await b.start()
        await until(lambda: b.engines.get(GUILD) is not None)
        engine_b = b.engines.get(GUILD)
        assert engine_b is not None
        await asyncio.sleep(0.5)
        assert engine_b.calls.total() == 0
        # Only the commanding process keeps the status message's browser count (bot/audience).
        sessions = await rig.store.list_sessions()
        assert (commanded_here(a, sessions), commanded_here(b, sessions)) == ([GUILD], [])

        await a.aclose()  # SIGTERM: the loop stops and releases its lease
        released = time.monotonic()
        host.next()
        await until(lambda: engine_b.lease.held, within=3)
        assert time.monotonic() - released < 1.0
        assert commanded_here(b, sessions) == [GUILD]
        await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN), within=3)
    finally:
        await b.aclose()
        await a.aclose()
        for store in stores:
            await store.aclose()


async def test_a_loop_whose_lease_was_taken_sends_nothing(
    redis_rig: tuple[Rig, str, TokenCipher],
) -> None:
    rig, _, _ = redis_rig
    for uid, name in ((HOST, "host"), (ANN, "ann"), (BEN, "ben")):
        await rig.link(uid, name)
    await rig.session(GUILD, HOST, (ANN, BEN))
    queue = [t.id for t in rig.fake.catalog[:4]]
    rig.player(HOST).load(queue, position_ms=20_000)
    engine = rig.engine(GUILD, holder="A")
    await engine.start()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))
    # Another process got the guild (A was partitioned past its TTL, say).
    assert await rig.store.release_lease(f"sync:{GUILD}", "A")
    assert await rig.store.acquire_lease(f"sync:{GUILD}", "B", 60)
    await until(lambda: not engine.lease.valid(), within=3)
    sent = engine.calls["play"] + engine.calls["seek"] + engine.calls["pause"]
    rig.player(HOST).next()
    await asyncio.sleep(1.5)
    assert engine.calls["play"] + engine.calls["seek"] + engine.calls["pause"] == sent
    assert rig.player(ANN).now().track_id == queue[0]


async def test_a_round_that_outlives_its_lease_writes_and_reports_nothing(
    redis_rig: tuple[Rig, str, TokenCipher],
) -> None:
    rig, _, _ = redis_rig
    for uid, name in ((HOST, "host"), (ANN, "ann")):
        await rig.link(uid, name)
    await rig.session(GUILD, HOST, (ANN,))
    queue = [t.id for t in rig.fake.catalog[:4]]
    rig.player(HOST).load(queue, position_ms=20_000)
    engine = rig.engine(GUILD, holder="A")  # rounds driven by hand: no renewals
    await engine.step()  # takes the lease (valid ~1.25 s), stores the snapshot
    await asyncio.sleep(0.3)
    reports = len(rig.events.statuses)
    rig.fake.hang(path="/v1/me/player", account="host", seconds=1.6)  # past the lease
    rig.player(HOST).next()
    await engine.step()
    assert not engine.lease.valid()
    await asyncio.sleep(0.5)
    session = await rig.store.get_session(GUILD)
    assert session is not None and session.snapshot is not None
    assert session.snapshot.track_id == queue[0]  # whoever holds the guild now writes it
    assert len(rig.events.statuses) == reports


async def test_a_loop_that_does_not_hold_the_lease_mostly_sleeps(
    redis_rig: tuple[Rig, str, TokenCipher], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, _, _ = redis_rig
    for uid, name in ((HOST, "host"), (ANN, "ann")):
        await rig.link(uid, name)
    await rig.session(GUILD, HOST, (ANN,))
    assert await rig.store.acquire_lease(f"sync:{GUILD}", "A", 60)  # another process has it
    waiting = rig.engine(GUILD, holder="B")
    rounds = 0
    step = waiting.step

    async def counted() -> float | None:
        nonlocal rounds
        rounds += 1
        return await step()

    monkeypatch.setattr(waiting, "step", counted)
    await waiting.start()
    await asyncio.sleep(2.0)
    assert rounds <= 3, rounds  # was every lease retry (0.25 s): 8; its lease wakes it anyway
    assert await rig.store.release_lease(f"sync:{GUILD}", "A")
    waiting.lease.poke()  # (what the release watch does)
    await until(lambda: waiting.lease.held, within=3)
    await until(lambda: rounds >= 3, within=3)

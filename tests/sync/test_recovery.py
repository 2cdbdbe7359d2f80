"""The engine's failure, back-off and recovery cycle end to end (issue #12), against the real
client stack, the fake Spotify (read-after-write lag on) and real SQLite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from core.sync.changes import Change
from core.sync.clock import Clock
from core.sync.engine import HOST_RELINK, SyncEngine
from core.sync.listener import Listener
from core.sync.reporter import PlaybackReport
from core.sync.supervisor import GuildEngines
from storage.records import ListenerState
from storage.records import ListenerStatus as S
from tests.fakes.spotify import FakePlayer
from tests.sync.conftest import until
from tests.sync.rig import Rig
from tests.sync.test_engine import ANN, BEN, GUILD, HOST, has_status, plays, setup

MORE = (4, 5, 6, 7, 8)  # with Ann and Ben: seven listeners


def in_sync(rig: Rig, *listeners: int) -> Callable[[], bool]:
    """`until`'s check: every one of `listeners` (Ann and Ben when none) plays with the host."""
    return lambda: all(rig.in_sync(HOST, uid) for uid in listeners or (ANN, BEN))


async def host_plays(rig: Rig, *listeners: int, position_ms: int = 5_000) -> FakePlayer:
    """The session set up (tests.sync.test_engine.setup) and the host playing its queue."""
    queue = await setup(rig, *listeners)
    host = rig.player(HOST)
    host.load(queue, position_ms=position_ms)
    return host


async def synced(rig: Rig, *listeners: int, **options: Any) -> SyncEngine:
    """The guild's loop started (`options` go to `rig.engine`), once everyone is in sync."""
    engine = rig.engine(GUILD, **options)
    await engine.start()
    await until(in_sync(rig, *listeners))
    return engine


def commands(rig: Rig, uid: int) -> int:
    account = rig.accounts[uid]
    return sum(
        rig.fake.count(path, account=account)
        for path in ("/v1/me/player/play", "/v1/me/player/pause", "/v1/me/player/seek")
    )


async def test_a_seven_listener_session_follows_the_host_with_one_command_each(rig: Rig) -> None:
    # Eight Spotify users: an app with extended quota (a development-mode app allows five).
    rig.fake.devmode.max_users = 8
    for uid in MORE:
        await rig.link(uid, f"guest{uid}")
    listeners = (ANN, BEN, *MORE)
    host = await host_plays(rig, *listeners, position_ms=30_000)
    await synced(rig, *listeners)
    before = {uid: commands(rig, uid) for uid in listeners}
    host.next()
    await until(in_sync(rig, *listeners))
    await asyncio.sleep(1.5)  # drift checks run meanwhile, through the read-after-write lag
    # Exactly one command per listener per host change: a lagging read did not cause another.
    assert {uid: commands(rig, uid) - before[uid] for uid in listeners} == dict.fromkeys(
        listeners, 1
    )
    assert all([await has_status(rig, uid, S.ATTACHED) for uid in listeners])


async def test_a_restart_reads_every_listener_and_restarts_none(rig: Rig) -> None:
    rig.fake.devmode.max_users = 8  # an app with extended quota, as above
    for uid in MORE:
        await rig.link(uid, f"guest{uid}")
    listeners = (ANN, BEN, *MORE)
    await host_plays(rig, *listeners, position_ms=30_000)
    first = await synced(rig, *listeners)
    await asyncio.sleep(1.0)  # past Spotify's read-after-write lag: a read shows the truth
    await first.aclose()
    before = {uid: commands(rig, uid) for uid in listeners}
    second = rig.engine(GUILD)  # more unknown listeners than the drift budget's burst (5)
    await second.start()
    await until(lambda: second.calls["listener_read"] >= len(listeners))
    await asyncio.sleep(0.5)
    assert {uid: commands(rig, uid) for uid in listeners} == before


async def test_a_listener_who_closes_and_reopens_spotify_is_synced_again(rig: Rig) -> None:
    await host_plays(rig)
    engine = await synced(rig, ANN)
    ann = rig.fake.accounts["ann"]
    device = ann.player.device_id
    ann.player.device_id = None  # Spotify closed: 204 on reads
    await until(lambda: has_status(rig, ANN, S.NO_DEVICE))
    ann.player.device_id = device  # reopened, still holding the old state
    ann.player.pause()
    for listener in engine.listeners.members.values():
        listener.retry_at = 0.0  # skip the 15 s wait before looking again
    await until(lambda: rig.in_sync(HOST, ANN))
    await until(lambda: has_status(rig, ANN, S.ATTACHED))


async def test_a_revoked_host_token_pauses_nobody_and_shows_no_false_pause(rig: Rig) -> None:
    await host_plays(rig)
    await synced(rig)
    rig.fake.expire_access_tokens("host")
    rig.fake.revoke_refresh_tokens("host")
    await until(lambda: (HOST, HOST_RELINK) in rig.events.notices)
    await until(lambda: rig.events.statuses and rig.events.statuses[-1].host_unreadable)
    await asyncio.sleep(1.0)
    assert rig.fake.count("/v1/me/player/pause") == 0
    assert rig.player(ANN).is_playing and rig.player(BEN).is_playing
    assert not rig.events.statuses[-1].is_playing  # neither "Playing" nor "Paused"
    assert rig.events.notices.count((HOST, HOST_RELINK)) == 1


async def test_an_outage_ends_and_everyone_is_back_within_a_second(rig: Rig) -> None:
    host = await host_plays(rig)
    await synced(rig, call_timeout_s=1.0)
    outage = rig.fake.fail(503, path="/v1/me/player/play", times=None)
    first = host.now().track_id
    host.next()
    await asyncio.sleep(6)  # long enough for back-offs of 4 s and more
    assert rig.player(ANN).now().track_id == first
    rig.fake.faults.remove(outage)
    ended = time.monotonic()
    await until(in_sync(rig), within=3)
    assert time.monotonic() - ended < 1.5


async def test_a_host_change_cuts_a_back_off_short(rig: Rig) -> None:
    host = await host_plays(rig)
    engine = await synced(rig, ANN, probe_interval_s=60.0)  # no probing: only the change helps
    rig.fake.fail(503, path="/v1/me/player/play", account="ann", times=3)
    host.next()
    await until(lambda: engine.listeners.members[ANN].failures >= 3, within=10)
    assert engine.listeners.members[ANN].retry_at > time.monotonic() + 1  # backing off
    host.next()  # the faults are used up; the change must not wait out the back-off
    await until(lambda: rig.in_sync(HOST, ANN), within=2)


async def test_a_slow_discord_never_holds_up_a_round(rig: Rig) -> None:
    host = await host_plays(rig)

    async def hangs(_: PlaybackReport) -> None:  # discord.py sleeping through a 429
        await asyncio.sleep(60)

    rig.events.status_changed = hangs  # type: ignore[method-assign]  # a slow Discord
    await synced(rig, report_timeout_s=30.0)
    for _ in range(3):
        host.next()
        await until(in_sync(rig), within=3)


async def test_a_restarted_process_gets_its_own_lease_back_at_once(rig: Rig) -> None:
    host = await host_plays(rig)
    # The process died (kill -9) holding the lease for another minute.
    assert await rig.store.acquire_lease(f"sync:{GUILD}", "me", 60)
    stranger = rig.engine(GUILD, holder="someone-else")
    await stranger.start()
    await asyncio.sleep(0.5)
    assert stranger.calls.total() == 0  # someone else's lease is respected
    await stranger.aclose()
    host.next()
    started = time.monotonic()
    await rig.engine(GUILD, holder="me").start()  # the same instance identity
    await until(in_sync(rig), within=3)
    assert time.monotonic() - started < 2


async def test_failing_sqlite_writes_degrade_instead_of_stopping_sync(rig: Rig) -> None:
    host = await host_plays(rig)
    engine = await synced(rig)
    db = rig.store._db  # type: ignore[attr-defined]  # a real write failure, as on a full disk
    await db.execute("PRAGMA query_only=ON")
    try:
        for _ in range(2):
            host.next()
            await until(in_sync(rig))
        report = engine.health.report()
        assert report.write_failures > 0 and report.failing_for_s is not None
        assert report.loops == 1 and not report.stalled
    finally:
        await db.execute("PRAGMA query_only=OFF")
    host.next()
    await until(in_sync(rig))
    await until(lambda: engine.health.report().failing_for_s is None)


async def test_a_session_that_vanished_is_reported_gone(rig: Rig) -> None:
    await host_plays(rig)
    engine = await synced(rig, ANN)
    await rig.store.delete_session(GUILD)  # e.g. deleted by hand, or by a process that died
    await asyncio.wait_for(engine.wait_closed(), 5)
    await until(lambda: rig.events.gone == [GUILD])


def test_the_clock_converts_between_monotonic_and_wall_time() -> None:
    clock = Clock(now=lambda: 100.0, wall=lambda: 1_700_000_000.0)
    assert clock.to_wall(98.0) == 1_699_999_998.0
    assert clock.from_wall(1_699_999_998.0) == 98.0


async def test_a_wall_clock_step_changes_no_interval(rig: Rig) -> None:
    host = await host_plays(rig)
    step = [0.0]
    await synced(rig, clock=Clock(wall=lambda: time.time() + step[0]))
    step[0] = -3600.0  # NTP steps the wall clock back an hour
    for _ in range(2):
        host.next()
        await until(in_sync(rig), within=3)
    session = await rig.store.get_session(GUILD)
    assert session is not None and session.snapshot is not None
    assert abs(session.snapshot.at - (time.time() - 3600)) < 30  # stored: wall time


async def test_a_closed_supervisor_starts_no_loop(rig: Rig) -> None:
    await setup(rig)
    engines = GuildEngines(rig.engine)
    await engines.aclose()
    assert await engines.start(GUILD) is None  # a late session hook during shutdown
    assert not any(e.running for e in rig.engines)


async def test_a_snapshot_written_across_a_hand_over_is_not_the_new_hosts(rig: Rig) -> None:
    await host_plays(rig)
    first = await synced(rig, ANN)

    async def stored() -> bool:
        session = await rig.store.get_session(GUILD)
        return session is not None and session.snapshot is not None

    await until(stored)
    await first.aclose()
    # Ann becomes host; a round of the old loop that began before it stores Hana's snapshot.
    await rig.store.remove_listener(GUILD, ANN)
    await rig.store.update_session(GUILD, {"host_user_id": ANN})
    stale = await rig.store.get_session(GUILD)
    assert stale is not None and stale.snapshot is not None
    assert stale.snapshot.host_user_id == HOST
    rig.player(ANN).pause()
    engine = rig.engine(GUILD)
    await engine.start()
    await until(lambda: bool(engine.last_change))
    # Ann's player is new to the loop (STARTED), not Hana's paused (PAUSE).
    assert Change.STARTED in engine.last_change


async def test_a_timed_out_play_is_not_overtaken_by_a_second_one(rig: Rig) -> None:
    await host_plays(rig, ANN)
    # Ann's first play hangs past the engine's timeout, then Spotify carries it out anyway.
    rig.fake.hang(path="/v1/me/player/play", account="ann", seconds=1.6)
    await rig.engine(GUILD, call_timeout_s=1.0).start()
    await until(lambda: plays(rig, ANN) == 1)
    await asyncio.sleep(1.5)  # timed out at 1 s; the late play lands at 1.6 s
    assert plays(rig, ANN) == 1  # no second play that the late one would overtake
    await until(lambda: rig.in_sync(HOST, ANN), within=8)


async def test_while_listeners_back_off_every_round_probes_one_though_rounds_jitter(
    rig: Rig,
) -> None:
    # Rounds are a poll interval apart from their starts; the probe's clock is read after the
    # host read, so consecutive rounds may see a hair under one interval between them.
    await host_plays(rig)
    listeners = rig.engine(GUILD, probe_interval_s=1.0).listeners
    for uid in (ANN, BEN):
        listeners.members[uid] = Listener(ListenerState(uid), failures=2, retry_at=1_000.0)
    probed = []
    for now in (10.0, 10.998, 11.995, 12.997):
        listeners.back_offs.probe(now, 1.0)
        probed.append([uid for uid, m in listeners.members.items() if m.retry_at == now])
        for member in listeners.members.values():
            member.retry_at = 1_000.0
    assert all(len(uids) == 1 for uids in probed), probed

"""The engine end to end: real SpotifyClient and spotipy against the fake Spotify, real SQLite.

Each test drives the host's fake player (as a person at their Spotify would) and looks at the
listeners' fake players, what the fake Spotify received, storage and the reported events.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from core.sessions import SessionService
from core.sync.changes import Change
from core.sync.engine import HOST_UNLINKED, QUOTA_NOTICE
from core.sync.supervisor import GuildEngines
from core.timetext import TimedText
from storage.records import LinkStatus
from storage.records import ListenerStatus as S
from tests.fakes.spotify_catalog import FakeDevice
from tests.sync.conftest import until
from tests.sync.rig import Rig

GUILD, HOST, ANN, BEN = 9, 1, 2, 3


async def setup(rig: Rig, *listeners: int) -> list[str]:
    """Host + Ann + Ben linked (more may be linked before), a session, a queue of 4 tracks."""
    for uid, name in ((HOST, "host"), (ANN, "ann"), (BEN, "ben")):
        if uid not in rig.accounts:
            await rig.link(uid, name)
    await rig.session(GUILD, HOST, listeners or (ANN, BEN))
    return [t.id for t in rig.fake.catalog[:4]]


async def status(rig: Rig, uid: int) -> S:
    session = await rig.store.get_session(GUILD)
    assert session is not None
    return session.listeners[uid].status


async def has_status(rig: Rig, uid: int, expected: S) -> bool:
    return await status(rig, uid) is expected


def plays(rig: Rig, uid: int) -> int:
    return rig.fake.count("/v1/me/player/play", account=rig.accounts[uid])


async def test_listeners_follow_start_seek_pause_resume_and_skip(rig: Rig) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=30_000)
    await rig.engine(GUILD).start()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    host.seek(120_000)
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    host.pause()
    await until(lambda: not rig.player(ANN).is_playing and not rig.player(BEN).is_playing)

    host.resume()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    host.next()
    await until(lambda: rig.player(ANN).now().track_id == queue[1])
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    async def stored_track() -> bool:
        session = await rig.store.get_session(GUILD)
        return bool(session and session.snapshot and session.snapshot.track_id == queue[1])

    await until(stored_track)
    assert {await status(rig, ANN), await status(rig, BEN)} == {S.ATTACHED}
    assert rig.events.notices == []
    shown = rig.events.statuses[-1]
    assert shown.track is not None and shown.track.id == queue[1]
    assert shown.is_playing


async def test_a_natural_track_end_moves_everyone_to_the_next_track(rig: Rig) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    first = rig.fake.tracks[queue[0]]
    host.load(queue, position_ms=first.duration_ms - 2_500)
    engine = rig.engine(GUILD)
    await engine.start()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    await until(lambda: host.now().track_id == queue[1])  # the track ends by itself
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))
    # Their own copy ended too (their queue held only that track): not taken for wandering off.
    assert {await status(rig, ANN), await status(rig, BEN)} == {S.ATTACHED}
    assert plays(rig, ANN) == 2


async def test_the_host_moving_to_another_device_changes_nothing_for_listeners(
    rig: Rig,
) -> None:
    laptop, phone = FakeDevice("host-laptop", "Laptop"), FakeDevice("host-phone", "Phone")
    await rig.link(HOST, "host", devices=[laptop, phone])
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=60_000)
    engine = rig.engine(GUILD)
    await engine.start()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    host.device_id = phone.id  # Spotify Connect: the host picks up their phone
    seen: set[Change] = set()

    async def device_seen() -> bool:
        seen.update(engine.last_change.kinds)
        session = await rig.store.get_session(GUILD)
        stored = session.snapshot.device_id if session and session.snapshot else None
        return Change.DEVICE in seen and stored == phone.id

    await until(device_seen)
    await asyncio.sleep(0.5)
    assert rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN)
    assert (plays(rig, ANN), plays(rig, BEN)) == (1, 1)  # not restarted


async def test_a_listener_who_plays_something_else_is_detached_until_resync(rig: Rig) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=10_000)
    await rig.engine(GUILD).start()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    own = rig.fake.catalog[10].id
    rig.player(ANN).load([own])
    await until(lambda: has_status(rig, ANN, S.DETACHED))
    commanded = plays(rig, ANN)
    host.next()
    await until(lambda: rig.in_sync(HOST, BEN))
    await asyncio.sleep(0.5)
    assert rig.player(ANN).now().track_id == own  # not fought
    assert plays(rig, ANN) == commanded
    assert rig.events.notices == []  # their own choice: no private notice
    shown = {s.user_id: s.status for s in rig.events.statuses[-1].listeners}
    assert shown[ANN] is S.DETACHED

    await SessionService(rig.store, rig.store).resync(GUILD, ANN)  # /gamenight resync
    rig.engines[0].wake()
    await until(lambda: rig.in_sync(HOST, ANN))
    assert await status(rig, ANN) is S.ATTACHED


async def test_no_active_device_targets_a_listed_device_else_asks_to_open_spotify(
    rig: Rig,
) -> None:
    tv, pc = FakeDevice("ann-tv", "TV", "TV"), FakeDevice("ann-pc", "Desk", "Computer")
    await rig.link(ANN, "ann", devices=[tv, pc], active=False)
    await rig.link(BEN, "ben", devices=[])
    queue = await setup(rig)
    rig.player(HOST).load(queue, position_ms=5_000)
    await rig.engine(GUILD).start()

    await until(lambda: rig.in_sync(HOST, ANN))
    targeted = rig.fake.requests("/v1/me/player/play", account="ann")[-1]
    assert targeted.query.get("device_id") == pc.id  # a computer before a TV
    await until(lambda: has_status(rig, BEN, S.NO_DEVICE))
    assert await status(rig, ANN) is S.ATTACHED
    assert rig.events.notices == [(BEN, "no Spotify device — open Spotify on any device")]


async def test_premium_required_is_flagged_told_once_and_left_alone(rig: Rig) -> None:
    await rig.link(BEN, "ben", premium=False)
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=5_000)
    await rig.engine(GUILD).start()
    await until(lambda: has_status(rig, BEN, S.PREMIUM_REQUIRED))
    await until(lambda: rig.in_sync(HOST, ANN))

    host.next()
    await until(lambda: rig.in_sync(HOST, ANN))
    await asyncio.sleep(0.4)
    assert rig.events.notices == [
        (BEN, "needs Spotify Premium — /gamenight listen plays along in your browser")
    ]
    assert plays(rig, BEN) == 1
    link = await rig.store.get_link(BEN)
    assert link is not None and link.status is LinkStatus.PREMIUM_REQUIRED


async def test_an_expired_access_token_is_refreshed_mid_session(rig: Rig) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=5_000)
    await rig.engine(GUILD).start()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    refreshes = rig.fake.count("/api/token")
    rig.fake.expire_access_tokens("host")
    rig.fake.expire_access_tokens("ann")
    host.next()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))
    assert rig.fake.count("/api/token") == refreshes + 2  # one each, then the retry went through
    assert any(r.status == 401 for r in rig.fake.requests("/v1/me/player", account="ann"))
    assert {await status(rig, ANN), await status(rig, BEN)} == {S.ATTACHED}
    assert rig.events.notices == []


async def test_a_revoked_refresh_token_needs_relink_and_is_told_once(rig: Rig) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=5_000)
    await rig.engine(GUILD).start()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    rig.fake.expire_access_tokens("ben")
    rig.fake.revoke_refresh_tokens("ben")  # Spotify answers invalid_grant from now on
    host.next()
    await until(lambda: has_status(rig, BEN, S.NEEDS_RELINK))
    await until(lambda: rig.in_sync(HOST, ANN))
    host.next()
    await until(lambda: rig.in_sync(HOST, ANN))
    await asyncio.sleep(0.4)
    assert rig.events.notices == [(BEN, "Spotify link expired — run /link again")]
    link = await rig.store.get_link(BEN)
    assert link is not None and link.status is LinkStatus.NEEDS_RELINK


async def test_a_429_storm_holds_every_call_until_retry_after_and_loses_nothing(
    rig: Rig,
) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=5_000)
    await rig.engine(GUILD).start()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    storm = rig.fake.fail(429, retry_after=1, path="/v1/", times=3)
    host.next()  # the change happens while the app is held
    await until(lambda: storm.hits == 3, within=15)
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN), within=15)

    api = rig.fake.requests("/v1/")
    for answer in (r for r in api if r.status == 429):
        # Calls already on the wire when the 429 came back may still arrive just after it;
        # nothing sent after it arrives before Retry-After (1 s) is over.
        early = [
            r
            for r in api
            if answer.answered_at + 0.1 < r.received_at < answer.answered_at + 1 - 0.05
        ]
        assert early == [], f"{len(early)} call(s) inside Retry-After"
    assert {await status(rig, ANN), await status(rig, BEN)} == {S.ATTACHED}
    assert rig.events.notices == []  # a plain 429 is not the host's business


async def test_quota_exceeded_is_reported_to_the_host(rig: Rig) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=5_000)
    await rig.engine(GUILD).start()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))

    rig.fake.fail(429, retry_after=1, quota=True, path="/v1/me/player", times=2)
    host.next()
    await until(lambda: rig.events.notices)
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN), within=15)
    ((told, notice),) = rig.events.notices  # told once
    assert told == HOST
    # Naming when calls resume (wall clock), for the bot to show in the host's own zone.
    assert isinstance(notice, TimedText) and notice.template == QUOTA_NOTICE
    assert time.time() - 5 < notice.at < time.time() + 5


async def test_a_hanging_listener_does_not_hold_up_the_others(rig: Rig) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=5_000)
    rig.fake.hang(path="/v1/me/player/play", account="ben", seconds=30, times=None)
    await rig.engine(GUILD, call_timeout_s=20.0).start()
    await until(lambda: rig.in_sync(HOST, ANN))

    for index in (1, 2):  # two more changes while Ben's first command still hangs
        host.next()
        await until(lambda i=index: rig.player(ANN).now().track_id == queue[i])  # type: ignore[misc]
        assert rig.in_sync(HOST, ANN)
    hung = rig.fake.requests("/v1/me/player/play", account="ben")
    assert len(hung) == 1 and hung[0].answered_at == 0.0  # still out, not resent meanwhile
    assert rig.player(BEN).now().track_id is None


async def test_a_restarted_process_resumes_without_restarting_listeners(rig: Rig) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=50_000)
    first = GuildEngines(rig.engine)
    assert await first.resume_all(rig.store) == 1
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN))
    await asyncio.sleep(0.5)  # the snapshot is stored
    await first.aclose()  # the process goes away

    commanded = plays(rig, ANN), plays(rig, BEN)
    second = GuildEngines(rig.engine)
    assert await second.resume_all(rig.store) == 1
    engine = second.get(GUILD)
    assert engine is not None
    await until(lambda: engine.calls["listener_read"] >= 2)  # looked before touching anyone
    await asyncio.sleep(0.5)
    assert (plays(rig, ANN), plays(rig, BEN)) == commanded  # in sync: left alone

    host.next()
    await until(lambda: rig.in_sync(HOST, ANN) and rig.in_sync(HOST, BEN), within=4)
    await second.aclose()


async def test_an_idle_host_ends_the_session(rig: Rig) -> None:
    queue = await setup(rig)
    host = rig.player(HOST)
    host.load(queue, position_ms=5_000)
    engine = rig.engine(GUILD, host_idle_timeout_s=1.0)
    await engine.start()
    await until(lambda: rig.in_sync(HOST, ANN))
    host.pause()
    await asyncio.wait_for(engine.wait_closed(), 5)
    assert engine.ended == "idle"
    assert rig.events.ended == [(GUILD, "idle")]
    assert await rig.store.get_session(GUILD) is None


async def test_a_host_who_unlinks_is_told_once_and_the_idle_timeout_ends_the_session(
    rig: Rig,
) -> None:
    queue = await setup(rig)
    rig.player(HOST).load(queue, position_ms=5_000)
    engine = rig.engine(GUILD, host_idle_timeout_s=1.5)
    await engine.start()
    await until(lambda: rig.in_sync(HOST, ANN))

    await rig.store.delete_link(HOST)  # /unlink while hosting
    await asyncio.wait_for(engine.wait_closed(), 5)
    assert engine.ended == "idle"
    assert rig.events.notices == [(HOST, HOST_UNLINKED)]
    assert await rig.store.get_session(GUILD) is None


async def test_a_stopped_session_ends_the_loop(rig: Rig) -> None:
    queue = await setup(rig)
    rig.player(HOST).load(queue)
    engine = rig.engine(GUILD)
    await engine.start()
    await until(lambda: rig.in_sync(HOST, ANN))
    await rig.store.delete_session(GUILD)
    engine.wake()
    await asyncio.wait_for(engine.wait_closed(), 5)
    assert engine.ended == "stopped"
    assert rig.events.ended == []  # stopped by someone else: they report it


async def test_a_listener_who_leaves_while_a_command_is_out_is_not_added_back(rig: Rig) -> None:
    await rig.link(BEN, "ben", premium=False)  # his play fails: the engine stores a status
    queue = await setup(rig)
    rig.player(HOST).load(queue, position_ms=5_000)
    rig.fake.hang(path="/v1/me/player/play", account="ben", seconds=0.5)
    engine = rig.engine(GUILD)
    round_ = asyncio.create_task(engine.step())  # one round, driven by hand
    await until(lambda: rig.fake.requests("/v1/me/player/play", account="ben"))

    await SessionService(rig.store, rig.store).leave(GUILD, BEN)  # /gamenight leave
    await round_
    session = await rig.store.get_session(GUILD)
    assert session is not None and BEN not in session.listeners
    await engine.step()
    assert plays(rig, BEN) == 1
    assert rig.events.notices == []  # gone: not told about a session they left


async def test_a_resync_does_not_add_back_a_listener_who_left_meanwhile(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await setup(rig)
    stored = await rig.store.get_session(GUILD)
    assert stored is not None
    for state in stored.listeners.values():  # both wandered off
        await rig.store.update_listener(GUILD, replace(state, status=S.DETACHED))
    read = rig.store.get_session

    async def read_then_leave(guild_id: int) -> object:
        session = await read(guild_id)
        monkeypatch.setattr(rig.store, "get_session", read)
        await rig.store.remove_listener(guild_id, BEN)  # another process's /gamenight leave
        return session

    monkeypatch.setattr(rig.store, "get_session", read_then_leave)
    done = await SessionService(rig.store, rig.store).resync(GUILD, HOST)
    assert done.user_ids == (ANN,)
    assert set(done.session.listeners) == {ANN}


async def test_starting_a_guild_twice_at_once_runs_one_engine(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await setup(rig)
    engines = GuildEngines(rig.engine)
    stale = await engines.start(GUILD)
    await stale.aclose()  # its loop is over, but it is still on the books
    close = stale.aclose

    async def slow_close() -> None:  # e.g. a command of theirs still hanging
        await asyncio.sleep(0.05)
        await close()

    monkeypatch.setattr(stale, "aclose", slow_close)
    first, second = await asyncio.gather(engines.start(GUILD), engines.start(GUILD))
    assert first is second is engines.get(GUILD)
    assert [e for e in rig.engines if e.running] == [first]
    await engines.aclose()


async def test_closing_an_engine_just_woken_stops_it(rig: Rig) -> None:
    await setup(rig)  # nothing playing: the loop mostly sleeps, waiting to be woken
    engine = rig.engine(GUILD)
    await engine.start()
    await until(lambda: engine.calls["host_read"] >= 1)
    await asyncio.sleep(0.2)  # the round is over: asleep until woken or the next poll
    engine.wake()  # e.g. a leave just stored, its wake-up on its way when the stop comes
    closing = asyncio.create_task(engine.aclose())
    done, _ = await asyncio.wait({closing}, timeout=1)
    assert done, "the loop took no notice of being closed"
    assert not engine.running

"""The engine's rounds, stepped by hand against in-process players with a manual clock."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import PremiumRequired, RateLimited, TokenRevoked
from core.sync.engine import EngineConfig, SyncEngine, SyncEngines
from core.sync.schedule import DriftConfig
from storage.records import HostSnapshot, ListenerState, Session
from storage.records import ListenerStatus as S
from tests.sync.sim import ManualClock, MemoryStore, RecordedEvents, SimDevice, SimSpotify, track

GUILD, HOST, L1, L2 = 1, 100, 201, 202
A, B = track("A"), track("B")


class Rig:
    def __init__(self, listeners: tuple[int, ...] = (L1, L2), **config: object) -> None:
        self.clock = ManualClock()
        self.spotify = SimSpotify(self.clock)
        self.store = MemoryStore(self.clock)
        self.events = RecordedEvents()
        self.store.sessions[GUILD] = Session(
            GUILD,
            HOST,
            created_at=self.clock.now,
            listeners={uid: ListenerState(uid, joined_at=self.clock.now) for uid in listeners},
        )
        self.engine = self.new_engine(**config)

    def new_engine(self, holder: str | None = None, **config: object) -> SyncEngine:
        return SyncEngine(
            GUILD,
            client=self.spotify,
            sessions=self.store,
            events=self.events,
            config=EngineConfig(**config),  # type: ignore[arg-type]  # test knobs by name
            leases=self.store if holder else None,
            holder=holder,
            clock=self.clock,
        )

    def status(self, uid: int) -> S:
        return self.store.sessions[GUILD].listeners[uid].status

    def pos(self, uid: int) -> int:
        return self.spotify.player(uid).position(self.clock.now)


async def test_mirrors_track_pause_resume_seek_and_skip() -> None:
    rig = Rig()
    sp = rig.spotify
    sp.host_plays(HOST, A, 30_000)
    assert await rig.engine.step() == pytest.approx(1.0)
    for uid in (L1, L2):
        assert sp.commands(uid) == [("play", (A.uri, 30_100, None))]  # + default 100 ms one-way

    rig.clock.advance(1)
    await rig.engine.step()
    assert sp.commands(L1) == [("play", (A.uri, 30_100, None))]  # in sync: nothing sent

    sp.host_plays(HOST, A, sp.player(HOST).position(rig.clock.now), playing=False)
    rig.clock.advance(0.5)
    assert await rig.engine.step() == pytest.approx(3.0)  # paused: slower polling
    assert sp.commands(L1)[-1] == ("pause", (None,))
    assert not sp.player(L1).is_playing

    rig.clock.advance(4)
    sp.host_plays(HOST, A, 31_000)
    await rig.engine.step()
    # resumed at the host's position plus the one-way latency learnt from the instant calls
    assert sp.commands(L1)[-1][0] == "play"
    assert rig.pos(L1) == pytest.approx(31_000, abs=100)

    rig.clock.advance(1)
    sp.host_plays(HOST, A, 120_000)
    await rig.engine.step()
    assert sp.commands(L2)[-1][0] == "seek"
    assert rig.pos(L2) == pytest.approx(120_000, abs=100)
    assert "seek" in rig.engine.last_change

    rig.clock.advance(1)
    sp.host_plays(HOST, B, 0)
    await rig.engine.step()
    assert sp.player(L1).track == B
    assert sp.player(L2).track == B
    assert rig.store.sessions[GUILD].snapshot == HostSnapshot(
        B.id, 0, True, rig.clock.now, 200_000, "phone"
    )


async def test_polls_just_after_the_predicted_end() -> None:
    rig = Rig()
    rig.spotify.host_plays(HOST, A, 199_400)
    assert await rig.engine.step() == pytest.approx(0.7)  # 0.6 s left + 0.1 s margin


async def test_a_listener_who_wanders_off_is_detached_not_fought_until_resync() -> None:
    rig = Rig(drift=DriftConfig(interval_s=5, calls_per_minute=600, burst=10))
    sp = rig.spotify
    sp.host_plays(HOST, A, 10_000)
    await rig.engine.step()

    rig.clock.advance(3)
    sp.player(L1).position_ms = sp.player(L1).position(rig.clock.now)
    sp.player(L1).is_playing = False  # L1 pauses on their own
    sp.player(L1).at = rig.clock.now
    rig.clock.advance(3)
    await rig.engine.step()  # drift check reads both listeners
    assert rig.status(L1) is S.DETACHED
    assert rig.status(L2) is S.ATTACHED
    detached_at = len(sp.commands(L1))

    rig.clock.advance(1)
    sp.host_plays(HOST, B, 0)
    await rig.engine.step()
    assert sp.player(L2).track == B
    assert len(sp.commands(L1)) == detached_at  # not fought
    assert rig.events.notices == []  # wandering off needs no private notice

    await rig.store.put_listener(GUILD, ListenerState(L1))  # /gamenight resync
    rig.clock.advance(1)
    await rig.engine.step()
    assert rig.status(L1) is S.ATTACHED
    assert sp.player(L1).track == B
    assert sp.player(L1).is_playing


async def test_listener_errors_mark_statuses_and_tell_once() -> None:
    rig = Rig(listeners=(L1, L2, 203))
    sp = rig.spotify
    sp.fail[L1] = [PremiumRequired("x"), PremiumRequired("x")]
    sp.fail[203] = [TokenRevoked("x")]
    sp.host_plays(HOST, A, 0)
    await rig.engine.step()
    assert rig.status(L1) is S.PREMIUM_REQUIRED
    assert rig.status(203) is S.NEEDS_RELINK
    assert rig.status(L2) is S.ATTACHED
    assert sp.player(L2).track == A  # the others were served all the same

    for _ in range(3):
        rig.clock.advance(1)
        sp.host_plays(HOST, B, 0)
        await rig.engine.step()
    assert sorted(rig.events.notices) == [
        (L1, "needs Spotify Premium — use the listen-along page"),
        (203, "Spotify link expired — run /link again"),
    ]
    assert sp.commands(L1) == [("play", (A.uri, 100, None))]  # left alone afterwards
    assert rig.events.statuses  # the status message was edited
    last = rig.events.statuses[-1]
    assert {(s.user_id, s.status) for s in last.listeners} == {
        (L1, S.PREMIUM_REQUIRED),
        (L2, S.ATTACHED),
        (203, S.NEEDS_RELINK),
    }


async def test_no_active_device_targets_a_listed_device_else_asks_to_open_spotify() -> None:
    rig = Rig()
    sp = rig.spotify
    sp.player(L1).device = None
    sp.player(L1).devices = [
        SimDevice("tv", "TV", "TV", False),
        SimDevice("pc", "PC", "Computer", False),
    ]
    sp.player(L2).device = None
    sp.player(L2).devices = []
    sp.host_plays(HOST, A, 5_000)
    await rig.engine.step()
    assert [c[0] for c in sp.commands(L1)] == ["play", "devices", "play"]
    assert sp.commands(L1)[-1][1][2] == "pc"  # a computer before a TV
    assert sp.player(L1).track == A
    assert rig.status(L1) is S.ATTACHED
    assert rig.status(L2) is S.NO_DEVICE
    assert rig.events.notices == [(L2, "no Spotify device — open Spotify on any device")]

    rig.clock.advance(5)
    await rig.engine.step()
    assert [c[0] for c in sp.commands(L2)] == ["play", "devices"]  # waits before looking again

    sp.player(L2).device = SimDevice("phone")  # they opened Spotify
    rig.clock.advance(11)
    await rig.engine.step()
    assert rig.status(L2) is S.ATTACHED
    assert rig.pos(L2) == pytest.approx(rig.pos(HOST), abs=150)


async def test_a_hanging_listener_does_not_hold_up_the_others() -> None:
    rig = Rig(call_timeout_s=0.05)
    sp = rig.spotify
    sp.hang[L1] = asyncio.Event()
    sp.host_plays(HOST, A, 0)
    await asyncio.wait_for(rig.engine.step(), 1)
    assert sp.player(L2).track == A
    assert sp.player(L1).track is None
    assert rig.status(L1) is S.ATTACHED  # one timeout is not yet an error status

    del sp.hang[L1]
    rig.clock.advance(0.5)
    await rig.engine.step()
    assert sp.player(L1).track is None  # backing off for a second after the timeout
    rig.clock.advance(1)
    await rig.engine.step()
    assert sp.player(L1).track == A


async def test_restart_resumes_without_restarting_listeners_in_sync() -> None:
    rig = Rig()
    sp = rig.spotify
    sp.host_plays(HOST, A, 50_000)
    await rig.engine.step()
    assert rig.store.sessions[GUILD].snapshot is not None

    rig.clock.advance(20)  # the process dies; a new one starts later
    fresh = rig.new_engine()
    await fresh.step()
    assert fresh.calls["listener_read"] == 2  # looked before touching anyone
    assert fresh.calls["play"] == 0
    assert len(sp.commands(L1)) == 1

    sp.host_plays(HOST, B, 0)
    rig.clock.advance(1)
    await fresh.step()
    assert sp.player(L1).track == B


async def test_host_rate_limited_backs_off_and_host_idle_ends_the_session() -> None:
    rig = Rig(host_idle_timeout_s=60)
    sp = rig.spotify
    sp.fail[HOST] = [RateLimited("slow down", retry_after=12)]
    sp.host_plays(HOST, A, 0, playing=False)
    assert await rig.engine.step() == pytest.approx(12)
    rig.clock.advance(12)
    assert await rig.engine.step() == pytest.approx(6)  # paused (3 s), doubled after a 429
    rig.clock.advance(61)
    assert await rig.engine.step() is None
    assert rig.engine.ended == "idle"
    assert rig.events.ended == ["idle"]
    assert GUILD not in rig.store.sessions


async def test_a_stopped_session_ends_the_loop() -> None:
    rig = Rig()
    rig.spotify.host_plays(HOST, A, 0)
    await rig.engine.start()
    await asyncio.sleep(0.01)
    assert rig.engine.running
    await rig.store.delete_session(GUILD)
    rig.engine.wake()
    await asyncio.wait_for(rig.engine.wait_closed(), 1)
    assert rig.engine.ended == "stopped"
    await rig.engine.aclose()


async def test_one_loop_per_guild_with_a_lease() -> None:
    rig = Rig(lease_ttl_s=15)
    sp = rig.spotify
    first, second = rig.new_engine(holder="p1"), rig.new_engine(holder="p2")
    sp.host_plays(HOST, A, 0)
    await first.step()
    assert await second.step() == pytest.approx(5)  # not the holder: only retries the lease
    assert second.calls.total() == 0
    assert first.calls["play"] == 2

    rig.clock.advance(20)  # p1 died without releasing: the lease runs out
    sp.host_plays(HOST, B, 0)
    await second.step()
    assert second.calls["play"] == 2
    assert await first.step() == pytest.approx(5)  # p1 comes back: it lost the lease
    await second.aclose()  # releases
    assert await first.step() != pytest.approx(5)


async def test_status_message_edits_are_rate_limited() -> None:
    rig = Rig(status_interval_s=3)
    sp = rig.spotify
    for letter in "ABCDEF":
        sp.host_plays(HOST, track(letter), 0)
        await rig.engine.step()
        rig.clock.advance(1)
    assert len(rig.events.statuses) == 2  # at 0 s and at 3 s
    assert rig.events.statuses[-1].track == track("D")


async def test_engines_resume_stored_sessions_once() -> None:
    rig = Rig()
    rig.spotify.host_plays(HOST, A, 0)
    engines = SyncEngines(lambda guild_id: rig.new_engine())
    assert await engines.resume_all(rig.store) == 1
    assert await engines.resume_all(rig.store) == 0
    first = engines.get(GUILD)
    assert first is not None
    assert await engines.start(GUILD) is first
    await asyncio.sleep(0.01)  # the loop's first round runs
    assert rig.spotify.player(L1).track == A
    await engines.aclose()
    assert not first.running

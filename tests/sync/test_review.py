"""Fixes from the review of the engine work (#12): each test failed before its fix."""

from __future__ import annotations

import asyncio

import pytest

from core.sync.clock import Clock, Latency
from core.sync.health import SyncHealth
from core.sync.lease import GuildLease
from core.sync.listener import PositionAt, StaleCommand
from core.sync.state import PlayerState
from core.sync.supervisor import GuildEngines
from tests.sync.conftest import until
from tests.sync.rig import Rig

GUILD, HOST, ANN, BEN = 9, 1, 2, 3


async def setup(rig: Rig, *listeners: int) -> list[str]:
    for uid, name in ((HOST, "host"), (ANN, "ann"), (BEN, "ben")):
        if uid not in rig.accounts:
            await rig.link(uid, name)
    await rig.session(GUILD, HOST, listeners or (ANN, BEN))
    return [t.id for t in rig.fake.catalog[:4]]


async def test_a_loop_that_ends_by_itself_is_no_longer_counted_nor_kept(rig: Rig) -> None:
    queue = await setup(rig)
    rig.player(HOST).load(queue)
    health = SyncHealth()
    engines = GuildEngines(lambda guild: rig.engine(guild, health=health))
    engine = await engines.start(GUILD)
    assert engine is not None
    await until(lambda: health.report().loops == 1)
    await rig.store.delete_session(GUILD)  # ended elsewhere: the loop ends by itself
    engine.wake()
    await asyncio.wait_for(engine.wait_closed(), 5)
    await asyncio.sleep(0)  # done-callbacks run on the next turn of the event loop
    assert health.report().loops == 0  # /healthcheck would call it stalled after 30 s
    assert GUILD not in engines._engines
    await engines.aclose()


def _position_at(*, deadline_in: float, lease: GuildLease) -> PositionAt:
    clock = Clock()
    host = PlayerState.idle(clock.now())
    return PositionAt(host, Latency(), clock, clock.now() + deadline_in, lease)


def _held_lease() -> GuildLease:
    return GuildLease(None, "sync:9", "rig", ttl_s=1.5, clock=Clock().now)  # no store: held


def _lost_lease(rig: Rig) -> GuildLease:
    return GuildLease(rig.store, "sync:9", "rig", ttl_s=1.5, clock=Clock().now)  # never acquired


async def test_a_pause_whose_lease_is_gone_at_send_time_is_never_sent(rig: Rig) -> None:
    queue = await setup(rig)
    rig.player(ANN).load(queue)
    assert rig.player(ANN).is_playing
    guard = _position_at(deadline_in=5.0, lease=_lost_lease(rig)).guard
    with pytest.raises(StaleCommand):
        await rig.client.pause(ANN, guard=guard)
    assert rig.fake.count("/v1/me/player/pause", account="ann") == 0
    assert rig.player(ANN).is_playing

    fenced = _position_at(deadline_in=5.0, lease=_held_lease())
    await rig.client.pause(ANN, guard=fenced.guard)
    assert rig.fake.count("/v1/me/player/pause", account="ann") == 1
    assert fenced.sent is not None


async def test_a_play_whose_deadline_passed_or_lease_is_gone_is_never_sent(rig: Rig) -> None:
    queue = await setup(rig)
    uri = f"spotify:track:{queue[0]}"
    late = _position_at(deadline_in=-0.001, lease=_held_lease())
    with pytest.raises(StaleCommand):
        await rig.client.play(ANN, uri, late)
    gone = _position_at(deadline_in=5.0, lease=_lost_lease(rig))
    with pytest.raises(StaleCommand):
        await rig.client.seek(ANN, gone)
    with pytest.raises(StaleCommand):
        await rig.client.play(ANN, uri, gone)
    assert rig.fake.count("/v1/me/player/play", account="ann") == 0
    assert rig.fake.count("/v1/me/player/seek", account="ann") == 0
    fresh = _position_at(deadline_in=5.0, lease=_held_lease())
    await rig.client.play(ANN, uri, fresh)
    assert rig.fake.count("/v1/me/player/play", account="ann") == 1

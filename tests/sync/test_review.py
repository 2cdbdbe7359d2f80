"""Fixes from the review of the engine work (#12): each test failed before its fix."""

from __future__ import annotations

import asyncio

from core.sync.health import SyncHealth
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

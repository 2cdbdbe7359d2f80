"""The sharded fake Discord against the REAL discord.py AutoShardedClient, one per shard.

Two clients of one token, each running one shard of two, as two bot processes would: each sees
only its shard's guilds, a guild's slash command reaches only its shard, a DM-less event with
no guild goes to shard 0, and a bad shard id is refused as Discord refuses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands

from tests.fakes.discord_shards import (
    INVALID_SHARD,
    SHARDING_REQUIRED,
    ShardedDiscord,
    shard_of,
)


class ShardProbe(discord.AutoShardedClient):
    """A sharded discord.py client with one slash command that says which shard answered."""

    def __init__(self, shard_id: int, shard_count: int) -> None:
        super().__init__(
            intents=discord.Intents.default(),
            shard_ids=[shard_id],
            shard_count=shard_count,
            guild_ready_timeout=0.05,
        )
        self.tree = app_commands.CommandTree(self)
        self.answered: list[int] = []

        @self.tree.command(name="where", description="Which shard am I on")
        async def where(interaction: discord.Interaction) -> None:
            self.answered.append(interaction.guild_id or 0)
            await interaction.response.send_message(f"shard {shard_id}", ephemeral=True)

    async def setup_hook(self) -> None:
        await self.tree.sync()


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ShardedDiscord]:
    fake = await ShardedDiscord(shard_count=2, heartbeat_interval_ms=500).start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url)
    )
    yield fake
    await fake.stop()


async def test_each_shard_gets_only_its_guilds_and_their_interactions(
    fake: ShardedDiscord,
) -> None:
    g0 = fake.add_guild_on_shard(0, "Zero", owner=fake.owner)
    g1 = fake.add_guild_on_shard(1, "One", owner=fake.owner)
    assert (shard_of(g0.id, 2), shard_of(g1.id, 2)) == (0, 1)
    probes = [ShardProbe(0, 2), ShardProbe(1, 2)]
    tasks = [asyncio.create_task(p.start(fake.token)) for p in probes]
    try:
        await fake.wait_shards({0, 1}, within=20)
        await fake.wait_until(lambda: all(p.is_ready() for p in probes), 20)
        assert {s.shard for s in fake.sessions} == {(0, 2), (1, 2)}
        on = [{g.id for g in p.guilds} for p in probes]
        assert g0.id in on[0] and g0.id not in on[1]
        assert g1.id in on[1] and g1.id not in on[0]
        assert on[0] | on[1] == set(fake.guilds)  # the default guild is on one of them

        await fake.wait_for_call("PUT", f"/applications/{fake.application_id}/commands")
        alice = fake.add_member("alice", guild=g0)
        bob = fake.add_member("bob", guild=g1)
        assert (await (await fake.slash("where", alice, guild=g0)).reply()).content == "shard 0"
        assert (await (await fake.slash("where", bob, guild=g1)).reply()).content == "shard 1"
        assert probes[0].answered == [g0.id] and probes[1].answered == [g1.id]

        # An event without a guild (here a made-up one) reaches shard 0's session only.
        await fake.dispatch("USER_UPDATE", fake.owner.user())
        seqs = {s.shard[0]: [e["t"] for e in s.events] for s in fake.sessions}
        assert "USER_UPDATE" in seqs[0] and "USER_UPDATE" not in seqs[1]
    finally:
        for probe in probes:
            await probe.close()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


async def test_gateway_bot_recommends_the_shard_count_and_a_bad_shard_is_refused(
    fake: ShardedDiscord,
) -> None:
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base}/gateway/bot", headers=headers) as r:
            assert (await r.json())["shards"] == 2
        async with http.ws_connect(fake.gateway_url) as ws:
            assert (await ws.receive_json())["op"] == 10
            identify = {"token": fake.token, "intents": 0, "shard": [2, 2], "properties": {}}
            await ws.send_json({"op": 2, "d": identify})
            closed = await ws.receive()
            assert closed.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == INVALID_SHARD
    assert fake.sessions == []


async def identify(fake: ShardedDiscord, shard: list[int] | None) -> int | None:
    """IDENTIFY on a raw gateway connection; the close code, or None if READY came."""
    async with aiohttp.ClientSession() as http, http.ws_connect(fake.gateway_url) as ws:
        assert (await ws.receive_json())["op"] == 10
        data: dict[str, object] = {"token": fake.token, "intents": 0, "properties": {}}
        if shard is not None:
            data["shard"] = shard
        await ws.send_json({"op": 2, "d": data})
        message = await ws.receive()
        if message.type == aiohttp.WSMsgType.CLOSE:
            return ws.close_code
        assert message.json()["t"] == "READY"
        return None


async def test_a_session_with_too_many_guilds_must_shard() -> None:
    fake = await ShardedDiscord(shard_count=2, max_guilds_per_session=2).start()
    try:
        for shard in (0, 0, 1, 1):
            fake.add_guild_on_shard(shard, "Guild", owner=fake.owner)
        assert len(fake.guilds) == 5  # with the default guild: 3 on one shard, 2 on the other
        # Unsharded, one session would hold all 5 guilds: refused with 4011.
        assert await identify(fake, None) == SHARDING_REQUIRED
        crowded = max((0, 1), key=lambda s: sum(shard_of(g, 2) == s for g in fake.guilds))
        assert await identify(fake, [crowded, 2]) == SHARDING_REQUIRED
        assert await identify(fake, [1 - crowded, 2]) is None  # 2 guilds: within the limit
        assert [s.shard for s in fake.sessions] == [(1 - crowded, 2)]
        assert ShardedDiscord().max_guilds_per_session == 2500  # Discord's limit by default
    finally:
        await fake.stop()

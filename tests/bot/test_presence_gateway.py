"""The presence plumbing at the gateway: the real discord.py against the fake Discord.

GUILD_CREATE carries members and presences only with the intents, and the bot's listener reads
the presences it carried once ready (they fire no event); discord.py parses the fake's Spotify
activity as a discord.Spotify.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest
from discord.ext import commands

from bot.client import point_discord_at
from bot.presence import PresenceCog, PresenceListener, intents_for
from core.presence import PresenceBoard
from tests.fakes.discord import FakeDiscord
from tests.fakes.spotify import FakeSpotify


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    fake = await FakeDiscord().start()
    point_discord_at(fake.api_base, fake.gateway_url)
    try:
        yield fake
    finally:
        await fake.stop()


async def connect(presence: bool, board: PresenceBoard) -> tuple[commands.Bot, asyncio.Task[None]]:
    bot = commands.Bot(
        command_prefix=commands.when_mentioned,
        intents=intents_for(presence),
        enable_raw_presences=presence,
        guild_ready_timeout=0.05,
    )
    await bot.add_cog(PresenceCog(bot, PresenceListener(board)))
    await bot.login("fake-bot-token")
    task = asyncio.create_task(bot.connect())
    async with asyncio.timeout(10):
        await bot.wait_until_ready()
        await asyncio.sleep(0.1)  # on_ready's handlers are tasks of their own
    return bot, task


async def test_guild_create_presences_reach_the_board_at_ready(fake: FakeDiscord) -> None:
    spotify = FakeSpotify()
    spotify.add_account("hana-sp")
    track = spotify.catalog[0]
    spotify.player("hana-sp").load([track.id], position_ms=42_000)
    hana = fake.add_member("hana")
    fake.presence.share(hana, spotify.player("hana-sp"))
    board = PresenceBoard()
    bot, task = await connect(True, board)
    try:
        assert board.available
        seen = board.get(hana.user_id)
        assert seen is not None and seen.listening is not None
        assert seen.listening.track_id == track.id
        assert seen.listening.title == track.name
        assert seen.listening.duration_ms == track.duration_ms
        assert seen.listening.position_ms is not None
        assert abs(seen.listening.position_ms - 42_000) < 2_000
        member = bot.get_guild(fake.default_guild.id).get_member(hana.user_id)  # type: ignore[union-attr]
        assert member is not None
        assert any(isinstance(a, discord.Spotify) for a in member.activities)
    finally:
        await bot.close()
        await asyncio.gather(task, return_exceptions=True)


async def test_without_the_intents_guild_create_has_no_members_or_presences(
    fake: FakeDiscord,
) -> None:
    spotify = FakeSpotify()
    spotify.add_account("hana-sp")
    spotify.player("hana-sp").load([spotify.catalog[0].id])
    hana = fake.add_member("hana")
    fake.presence.share(hana, spotify.player("hana-sp"))
    board = PresenceBoard()
    bot, task = await connect(False, board)
    try:
        assert not board.available and board.get(hana.user_id) is None
        (guild_create,) = [c for c in fake._events if c["t"] == "GUILD_CREATE"]
        data = guild_create["d"]
        assert data["presences"] == []
        assert [m["user"]["id"] for m in data["members"]] == [str(fake.bot.user_id)]
        spotify.player("hana-sp").next()  # a change: no PRESENCE_UPDATE without the intent
        await asyncio.sleep(fake.presence.delay_s + fake.presence.jitter_s + 0.2)
        assert fake.presence.sent == []
    finally:
        await bot.close()
        await asyncio.gather(task, return_exceptions=True)

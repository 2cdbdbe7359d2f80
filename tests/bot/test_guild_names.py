"""DMs about a game night name its guild, also in a process whose gateway does not carry it.

A shard process that took another shard's game night over has that guild in no gateway cache
of its own (the sharded fake Discord, like Discord, sends a guild's events only to its shard),
so its DMs fetch the name over REST.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest

from bot.__main__ import Running, running
from bot.sync import DiscordAnnouncer
from tests.conftest import free_port
from tests.fakes.discord_shards import ShardedDiscord
from tests.fakes.spotify import FakeSpotify
from tests.fakes.wiring import settings_for_fakes


@pytest.fixture
async def shard0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ShardedDiscord, Running]]:
    """Game Night running shard 0 of 2 against the sharded fake Discord."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    fake = await ShardedDiscord(shard_count=2).start()
    spotify = await FakeSpotify().start()
    settings = settings_for_fakes(
        fake, spotify, port=free_port(), db_path=tmp_path / "gamenight.db"
    )
    settings = dataclasses.replace(settings, discord_shard_count=2, discord_shard_ids=(0,))
    try:
        async with running(settings, client_options={"guild_ready_timeout": 0.05}) as app:
            await fake.wait_shards({0})
            yield fake, app
    finally:
        await fake.stop()
        await spotify.stop()


async def test_dm_names_a_guild_of_another_shard(
    shard0: tuple[ShardedDiscord, Running],
) -> None:
    fake, app = shard0
    assert app.bot is not None
    elsewhere = fake.add_guild_on_shard(1, "Other Shard HQ", owner=fake.owner)
    member = fake.add_member("fan", guild=elsewhere)
    assert app.bot.get_guild(elsewhere.id) is None  # not in this process's gateway cache

    events = DiscordAnnouncer(app.bot, app.services.sessions)
    await events.notify_user(elsewhere.id, member.user_id, "your Spotify stopped.")

    (dm,) = fake.dms(member)
    assert dm.text == "🎮 Game night in Other Shard HQ: your Spotify stopped."
    assert fake.requests("GET", f"/guilds/{elsewhere.id}")


async def test_dm_without_a_name_when_discord_does_not_know_the_guild(
    shard0: tuple[ShardedDiscord, Running],
) -> None:
    fake, app = shard0
    assert app.bot is not None
    member = fake.add_member("fan", guild=fake.default_guild)
    gone = (77 << 22) | 5  # a guild the bot left: Discord answers 404 Unknown Guild

    events = DiscordAnnouncer(app.bot, app.services.sessions)
    await events.notify_user(gone, member.user_id, "your Spotify stopped.")

    (dm,) = fake.dms(member)
    assert dm.text == "🎮 Game night: your Spotify stopped."

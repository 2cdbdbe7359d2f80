"""Which bot a process builds for its shard settings, and which guilds' game nights it resumes."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from discord.ext import commands

from bot.client import GameNightBot, make_bot, shard_of

# Snowflakes whose high bits (guild_id >> 22) are 40, 41, 42: shards 0, 1, 0 of 2.
GUILDS = [(40 << 22) | 7, (41 << 22) | 7, (42 << 22) | 7]


def build(**options: Any) -> GameNightBot:
    return make_bot(None, dev_guild_id=None, **options)  # type: ignore[arg-type]


async def test_unsharded_bot_runs_every_guild() -> None:
    bot = build()
    assert not isinstance(bot, discord.AutoShardedClient)
    assert all(bot.runs_guild(g) for g in GUILDS)


@pytest.mark.parametrize(
    ("shard_ids", "runs"),
    [((0,), [True, False, True]), ((1,), [False, True, False]), (None, [True, True, True])],
)
async def test_sharded_bot_runs_only_its_shards_guilds(
    shard_ids: tuple[int, ...] | None, runs: list[bool]
) -> None:
    bot = build(shard_count=2, shard_ids=shard_ids)
    assert isinstance(bot, commands.AutoShardedBot)
    assert bot.shard_count == 2
    assert bot.shard_ids == (None if shard_ids is None else list(shard_ids))
    assert [shard_of(g, 2) for g in GUILDS] == [0, 1, 0]
    assert [bot.runs_guild(g) for g in GUILDS] == runs

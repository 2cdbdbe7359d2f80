"""MemberNames (#14 review): server nicknames, a failed fetch retried after a while, bounded."""

from __future__ import annotations

import asyncio

import pytest

from bot import names
from bot.names import MemberNames
from tests.bot.conftest import World


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _settled(names_of: MemberNames, guild_id: int, user_id: int) -> str | None:
    """Ask, let the background fetch land, ask again: what the page's next event shows."""
    names_of(guild_id, user_id)
    for _ in range(200):
        await asyncio.sleep(0.01)
        if not names_of._fetching:
            break
    return names_of(guild_id, user_id)


async def test_names_are_server_nicknames_and_a_failed_fetch_is_retried(world: World) -> None:
    guild = world.discord.default_guild
    async with world.run() as app:
        assert app.bot is not None
        clock = Clock()
        names_of = MemberNames(app.bot, clock=clock)
        # Joined after the bot's cache was filled: only the REST fetch can name them.
        late = world.discord.add_member("ann")
        late.nick = "Annie at the party"
        assert names_of(guild.id, late.user_id) is None  # "someone" until the fetch lands
        assert await _settled(names_of, guild.id, late.user_id) == "Annie at the party"
        fetches = len(world.discord.requests("GET"))
        assert names_of(guild.id, late.user_id) == "Annie at the party"
        assert len(world.discord.requests("GET")) == fetches  # kept, not asked again

        # Not (yet) a member: Discord says 404; kept as unknown only for RETRY_AFTER seconds.
        unknown = late.user_id + 1000
        assert await _settled(names_of, guild.id, unknown) is None
        gets = len(world.discord.requests("GET"))
        assert await _settled(names_of, guild.id, unknown) is None
        assert len(world.discord.requests("GET")) == gets  # no retry inside the window
        ben = world.discord.add_member("ben")
        del guild.members[ben.user_id]
        ben.user_id = unknown
        guild.members[unknown] = ben
        clock.now += names.RETRY_AFTER + 1
        assert await _settled(names_of, guild.id, unknown) == "ben"


async def test_kept_names_are_bounded(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    guild = world.discord.default_guild
    async with world.run() as app:
        assert app.bot is not None
        names_of = MemberNames(app.bot)
        late = [world.discord.add_member(f"p{i}") for i in range(5)]
        monkeypatch.setattr(names, "MAX_KEPT", 3)
        for member in late:
            assert await _settled(names_of, guild.id, member.user_id) == member.name
        assert len(names_of._known) == 3
        assert [k[1] for k in names_of._known] == [m.user_id for m in late[-3:]]

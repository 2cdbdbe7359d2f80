"""A guild's name for messages about it, also when this process's gateway does not carry it.

With shards across processes, a process that took another shard's game night over has that
guild in no gateway cache of its own (Discord sends a guild's events only to its shard), so
`get_guild` is None there. The name then comes from REST (`GET /guilds/{id}`, which works for
any guild the bot is in), with a short timeout: a DM must not wait long on Discord for a
nicety, and without the name it is still understandable.
"""

from __future__ import annotations

import asyncio
import logging

import discord

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 2.0


async def guild_name(
    client: discord.Client, guild_id: int, *, timeout_s: float = FETCH_TIMEOUT_S
) -> str | None:
    """The guild's name from the gateway cache, else from REST; None if neither answers."""
    guild = client.get_guild(guild_id)
    if guild is not None:
        return guild.name
    try:
        async with asyncio.timeout(timeout_s):
            return (await client.fetch_guild(guild_id)).name
    except (TimeoutError, discord.HTTPException) as err:
        log.info("no name for guild %s from Discord (%r): the message goes without", guild_id, err)
        return None

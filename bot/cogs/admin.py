"""Owner-only maintenance: publish the slash commands globally."""

from __future__ import annotations

import logging
from typing import Any

from discord.ext import commands

log = logging.getLogger(__name__)


class Admin(commands.Cog):
    """Owner tools, invoked by mentioning the bot (`@Game Night sync`)."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @commands.command(name="sync")
    @commands.is_owner()
    async def sync(self, ctx: commands.Context[commands.Bot]) -> None:
        """Publish the slash commands to every server (takes up to an hour to show)."""
        synced = await self.bot.tree.sync()
        log.info("synced %d global commands for %s", len(synced), ctx.author.id)
        await ctx.reply(f"Synced {len(synced)} commands globally.", mention_author=False)

    async def cog_command_error(self, ctx: commands.Context[Any], error: Exception) -> None:
        if isinstance(error, commands.NotOwner):
            # Say nothing: the command is not meant to be discoverable.
            log.info("user %s tried the owner-only %s", ctx.author.id, ctx.command)
            return
        log.error("owner command %s failed", ctx.command, exc_info=error)

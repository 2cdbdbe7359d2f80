"""The discord.py client: command tree with the one error path, cogs, command sync, DMs."""

from __future__ import annotations

import logging
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.cogs.admin import Admin
from bot.cogs.gamenight import GameNight, SessionButtons
from bot.cogs.linking import Linking
from bot.presence import (
    REFUSED_NOTE,
    PresenceCog,
    PresenceListener,
    drop_privileged_intents,
    intents_for,
)
from bot.replies import report_error
from bot.services import Services
from bot.status import StatusBoard

log = logging.getLogger(__name__)


def point_discord_at(api_base: str, gateway_url: str | None) -> None:
    """Aim discord.py at another Discord (the test fake); it only offers class attributes."""
    discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url is not None:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class GameNightTree(app_commands.CommandTree[Any]):
    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        await report_error(interaction, error)


class GameNightBot(commands.Bot):
    """Receives its services; `setup_hook` only adds cogs, syncs commands and resumes."""

    def __init__(
        self,
        services: Services,
        *,
        dev_guild_id: int | None,
        presence_intent: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            # Prefix commands only by mention (no message-content intent): the owner's `sync`.
            command_prefix=commands.when_mentioned,
            intents=intents_for(presence_intent),
            enable_raw_presences=presence_intent,  # bot/presence.py says why raw
            tree_cls=GameNightTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.services = services
        self.dev_guild_id = dev_guild_id
        self.board: StatusBoard | None = None  # set in setup_hook; the sync engine reports to it

    async def setup_hook(self) -> None:
        s = self.services
        gamenight: GameNight | None = None

        def buttons() -> discord.ui.View:
            return SessionButtons(gamenight)

        listen = s.listen.listen
        board = StatusBoard(
            self,
            s.sessions,
            buttons,
            tracks=s.spotify,
            audience=listen.audience,
        )
        self.board = board
        listen.watch_audience(board.audience_changed)
        gamenight = GameNight(s.sessions, board, s.listen, presence=s.presence)
        await self.add_cog(PresenceCog(self, PresenceListener(s.presence)))
        await self.add_cog(Linking(s.linker, s.sessions, s.spotify))
        await self.add_cog(gamenight)
        await self.add_cog(Admin(self))
        self.add_view(gamenight.buttons)  # clicks on status messages from before a restart
        if self.dev_guild_id is not None:
            guild = discord.Object(self.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to development guild %s", len(synced), guild.id)
        resumed = await s.sessions.resume_all()
        if resumed:
            log.info("resumed %d game night(s) from storage", len(resumed))

    async def connect(self, *, reconnect: bool = True) -> None:
        """Connect; if Discord refuses the privileged intents (4014), once more without."""
        while True:
            try:
                return await super().connect(reconnect=reconnect)
            except discord.PrivilegedIntentsRequired:
                if not (self.intents.presences or self.intents.members):
                    raise
                if self.is_closed():
                    # AutoShardedClient closes itself on 4014 (discord/shard.py): it cannot
                    # connect again. Say what to do instead of retrying a dead client.
                    log.error("%s Or set DISCORD_PRESENCE_INTENT=false.", REFUSED_NOTE)
                    raise
                log.warning("%s", REFUSED_NOTE)
                self.services.presence.note = REFUSED_NOTE
                drop_privileged_intents(self)

    async def on_command_error(
        self, context: commands.Context[Any], exception: commands.CommandError, /
    ) -> None:
        if isinstance(exception, commands.CommandNotFound):
            return  # someone mentioned the bot in conversation
        await super().on_command_error(context, exception)

    def display_name(self, user_id: int) -> str | None:
        """A cached user's name (for the listen page); None when not cached."""
        user = self.get_user(user_id)
        return user.display_name if user is not None else None

    async def dm(self, user_id: int, text: str) -> bool:
        """Send a direct message; False when the user does not accept DMs from the bot."""
        try:
            user = self.get_user(user_id) or await self.fetch_user(user_id)
            await user.send(text)
        except discord.HTTPException as exc:
            log.info("could not DM user %s: %s", user_id, exc)
            return False
        return True

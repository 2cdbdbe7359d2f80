"""The discord.py client: command tree with the one error path, cogs, command sync, DMs."""

from __future__ import annotations

import logging
import time
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.cogs.admin import Admin
from bot.cogs.gamenight import GameNight, SessionButtons
from bot.cogs.linking import Linking
from bot.cogs.voice import VoiceCommands, VoiceWatch
from bot.presence import PresenceWatch
from bot.replies import report_error
from bot.services import Services
from bot.status import StatusBoard
from bot.voice import VoiceConfig, VoicePlayers
from core.tracks import TrackInfo
from core.voice import HostPlayback, playback_from_snapshot

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
        voice: VoiceConfig | None = None,
        **options: Any,
    ) -> None:
        intents = discord.Intents.default()
        intents.presences = True  # the host's Spotify presence drives voice (privileged)
        super().__init__(
            # Prefix commands only by mention (no message-content intent): the owner's `sync`.
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=GameNightTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.services = services
        self.dev_guild_id = dev_guild_id
        self.board: StatusBoard | None = None  # set in setup_hook; the sync engine reports to it
        self.voice_config = voice or VoiceConfig()
        self.voice: VoicePlayers | None = None  # set in setup_hook
        self._tracks: dict[str, TrackInfo] = {}  # metadata of engine snapshots, for voice

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
        gamenight = GameNight(s.sessions, board, s.listen)
        await self.add_cog(Linking(s.linker, s.sessions, s.spotify))
        await self.add_cog(gamenight)
        await self.add_cog(Admin(self))
        await self._add_voice(gamenight, board)
        self.add_view(gamenight.buttons)  # clicks on status messages from before a restart
        if self.dev_guild_id is not None:
            guild = discord.Object(self.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to development guild %s", len(synced), guild.id)
        resumed = await s.sessions.resume_all()
        if resumed:
            log.info("resumed %d game night(s) from storage", len(resumed))

    async def _add_voice(self, gamenight: GameNight, board: StatusBoard) -> None:
        """Presence listener, voice players and /gamenight voice (bot/voice.py)."""
        s = self.services
        presence = PresenceWatch(s.presence, self.intents)
        players = VoicePlayers(self, s.presence, s.resolver, self.voice_config)
        watch = VoiceWatch(players, s.sessions)
        self.voice = players
        board.voice_line = players.status_line
        players.on_change = board.voice_changed
        players.on_leave = watch.tell
        s.sessions.subscribe(players)
        if s.sessions.spotify_accounts:
            players.snapshots = self._engine_playback
        await self.add_cog(presence)
        await self.add_cog(watch)
        group = gamenight.app_command
        assert group is not None, "GroupCog always has its group"
        group.add_command(VoiceCommands(s.sessions, players, s.presence, presence))

    async def _engine_playback(self, guild_id: int) -> HostPlayback | None:
        """The sync engine's stored snapshot of the host, with the track's metadata."""
        session = await self.services.sessions.find(guild_id)
        snapshot = session.snapshot if session is not None else None
        if snapshot is None or snapshot.track_id is None or not snapshot.is_playing:
            return None
        track = self._tracks.get(snapshot.track_id)
        if track is None:
            track = await self.services.spotify.track(snapshot.track_id)
            if len(self._tracks) > 256:
                self._tracks.clear()
            self._tracks[track.id] = track
        return playback_from_snapshot(snapshot, track, time.time(), time.monotonic())

    async def close(self) -> None:
        if self.voice is not None:
            await self.voice.aclose()
        await super().close()

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

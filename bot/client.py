"""The discord.py client: command tree with the one error path, cogs, command sync, DMs."""

from __future__ import annotations

import asyncio
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
from bot.voice import VoiceConfig, VoicePlayers
from core.tracks import TrackInfo
from core.voice import HostPlayback, playback_from_snapshot

log = logging.getLogger(__name__)

REFUSED_CODE = 4014  # gateway close code: "Disallowed intent(s)"


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a guild's events to (gateway docs, "Sharding Formula")."""
    return (guild_id >> 22) % shard_count


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
        voice: VoiceConfig | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            # Prefix commands only by mention (no message-content intent): the owner's `sync`.
            command_prefix=commands.when_mentioned,
            # Intents.default() has voice_states (voice); presences and members as configured.
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
            audience=s.storage.get_audience,  # browsers may be on another process (web replica)
        )
        self.board = board
        listen.watch_audience(board.audience_changed)
        gamenight = GameNight(
            s.sessions, board, s.listen, quota=s.spotify.quota, presence=s.presence
        )
        presences = PresenceListener(s.presence)
        await self.add_cog(PresenceCog(self, presences))
        await self.add_cog(Linking(s.linker, s.sessions, s.spotify))
        await self.add_cog(gamenight)
        await self.add_cog(Admin(self))
        await self._add_voice(gamenight, board, presences)
        self.add_view(gamenight.buttons)  # clicks on status messages from before a restart
        if self.dev_guild_id is not None:
            guild = discord.Object(self.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to development guild %s", len(synced), guild.id)
        resumed = await s.sessions.resume_all(self.runs_guild)
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
                    # A client closed for good cannot connect again (ShardedGameNightBot keeps
                    # itself open on 4014; this is the case nobody foresaw): say what to do.
                    log.error("%s Or set DISCORD_PRESENCE_INTENT=false.", REFUSED_NOTE)
                    raise
                log.warning("%s", REFUSED_NOTE)
                self.services.presence.note = REFUSED_NOTE
                drop_privileged_intents(self)

    async def _add_voice(
        self, gamenight: GameNight, board: StatusBoard, presences: PresenceListener
    ) -> None:
        """Voice players and /gamenight voice (bot/voice.py), fed by the presence board."""
        s = self.services
        assert s.voice_relay is not None, "the composition root starts it with the gateway"
        players = VoicePlayers(self, s.presence, s.resolver, s.voice_relay, self.voice_config)
        watch = VoiceWatch(players, s.sessions)
        self.voice = players
        board.voice_line = players.status_line
        players.on_change = board.voice_changed
        players.on_leave = watch.tell
        s.sessions.subscribe(players)
        if s.sessions.spotify_accounts:
            players.snapshots = self._engine_playback
        await self.add_cog(watch)
        group = gamenight.app_command
        assert group is not None, "GroupCog always has its group"
        group.add_command(VoiceCommands(s.sessions, players, s.presence, presences))

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

    def runs_guild(self, guild_id: int) -> bool:
        """Whether this process's shards get the guild's events (every guild when unsharded).

        A process resumes only these guilds' sync loops; another's are left to their own
        process, and reach this one through the guild lease only when that process is gone.
        """
        ids = getattr(self, "shard_ids", None)  # AutoShardedClient's; None: every shard
        return (
            self.shard_count is None or ids is None or shard_of(guild_id, self.shard_count) in ids
        )

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


class ShardedGameNightBot(GameNightBot, commands.AutoShardedBot):
    """The same bot on some shards of a sharded application (DISCORD_SHARD_COUNT/_IDS).

    On 4014 (privileged intents refused) AutoShardedClient.connect closes the whole client
    (HTTP session included) before it raises (discord/shard.py, 2.7.1), and a closed client
    cannot connect again. So while the intents are still asked for and a shard was refused
    them, `close` only drops this process's shards and their pending gateway events;
    `GameNightBot.connect` then identifies every shard again without the intents.
    """

    async def close(self) -> None:
        if self._refused_privileged_intents():
            await self._drop_shards()
            return
        await super().close()

    def _refused_privileged_intents(self) -> bool:
        if not (self.intents.presences or self.intents.members):
            return False
        shards: dict[int, Any] = getattr(self, "_AutoShardedClient__shards", {})
        return any(
            getattr(getattr(shard.ws, "socket", None), "close_code", None) == REFUSED_CODE
            for shard in shards.values()
        )

    async def _drop_shards(self) -> None:
        shards: dict[int, Any] = self._AutoShardedClient__shards  # type: ignore[attr-defined]
        await asyncio.gather(*(shard.close() for shard in shards.values()), return_exceptions=True)
        shards.clear()
        # Every refused shard queued its own 4014: the next connect must not read them.
        self._AutoShardedClient__queue: asyncio.PriorityQueue[Any] = asyncio.PriorityQueue()


def make_bot(
    services: Services,
    *,
    dev_guild_id: int | None,
    shard_count: int | None = None,
    shard_ids: tuple[int, ...] | None = None,
    **options: Any,
) -> GameNightBot:
    """One unsharded gateway session, or the given shards of `shard_count` in this process."""
    if shard_count is None:
        return GameNightBot(services, dev_guild_id=dev_guild_id, **options)
    return ShardedGameNightBot(
        services,
        dev_guild_id=dev_guild_id,
        shard_count=shard_count,
        shard_ids=None if shard_ids is None else list(shard_ids),
        **options,
    )

"""The bot in voice channels, playing each host's track at the host's position.

`VoicePlayers` keeps one `GuildVoice` (bot/voice_guild.py: the connection, its loop following
the host, ffmpeg, reconnects and moves) per guild: it joins and leaves, wakes a guild's player
when its host's presence changes, counts the channel for the status message, and ends and
auto-starts players with the game night (it is the `SessionHooks`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import discord
from discord.channel import VocalGuildChannel

from bot.voice_channel import VoiceRefused, check_can_join, connect
from bot.voice_guild import GuildVoice
from bot.voice_relay import VoiceRelay
from core.presence import Presence, PresenceBoard
from core.resolver import Resolver
from core.voice import HostPlayback, host_playback
from storage.records import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceConfig:
    auto_join: bool = False
    empty_timeout_s: float = 60.0
    connect_timeout_s: float = 15.0
    tick_s: float = 1.0


class VoicePlayers:
    """Every guild's voice player; also the `SessionHooks` that end and auto-start them."""

    def __init__(
        self,
        client: discord.Client,
        board: PresenceBoard,
        resolver: Resolver,
        relay: VoiceRelay,
        config: VoiceConfig,
    ) -> None:
        self.client = client
        self.board = board
        self.resolver = resolver
        self.relay = relay
        self.config = config
        # The sync engine's view of the host, for hosts without a presence (Spotify app only).
        self.snapshots: Callable[[int], Awaitable[HostPlayback | None]] | None = None
        self.on_change: Callable[[int], Any] | None = None  # the status message
        self.on_leave: Callable[[int, str], Coroutine[Any, Any, None]] | None = (
            None  # say why we left
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._guilds: dict[int, GuildVoice] = {}
        self._unsubscribe = board.subscribe(self._presence)

    def get(self, guild_id: int) -> GuildVoice | None:
        return self._guilds.get(guild_id)

    async def host_playback(self, guild_id: int, host_id: int) -> HostPlayback | None:
        """The host's playback: their presence; when it shows no Spotify (paused, or not
        shared with Discord), the sync engine's snapshot if the bot has a Spotify app (the
        engine sees a pause within its poll interval too)."""
        presence = self.board.get(host_id)
        listening = presence is not None and presence.listening is not None
        if listening or self.snapshots is None:
            return host_playback(presence)
        try:
            return await self.snapshots(guild_id)
        except Exception as exc:  # a storage or Spotify blip: try again next round
            log.info("guild %s: reading the host's snapshot failed: %r", guild_id, exc)
            return None

    def _presence(self, presence: Presence) -> None:
        for guild in self._guilds.values():
            if guild.host_id == presence.user_id:
                guild.wake()

    def changed(self, guild_id: int) -> None:
        if self.on_change is not None:
            self.on_change(guild_id)

    def status_line(self, guild_id: int) -> str | None:
        """The status message's voice line, or None when the bot is not in voice."""
        player = self._guilds.get(guild_id)
        if player is None or player.vc.channel is None:
            return None
        people = player.humans()
        line = (
            f"🔊 In {player.vc.channel.mention} · {people} {'person' if people == 1 else 'people'}"
        )
        return f"{line}\n{player.note}" if player.note else line

    async def join(self, channel: VocalGuildChannel, host_id: int, volume: float) -> GuildVoice:
        guild_id = channel.guild.id
        player = self._guilds.get(guild_id)
        if player is not None and player.vc.is_connected():
            player.host_id = host_id
            player.set_volume(volume)
            if player.vc.channel != channel:
                check_can_join(channel)
                await player.vc.move_to(channel)
            player.wake()
            return player
        if player is not None:
            await self.leave(guild_id, "replaced", quiet=True)
        check_can_join(channel)
        vc = await connect(channel, self.config.connect_timeout_s)
        player = GuildVoice(self, vc, host_id, volume)
        self._guilds[guild_id] = player
        player.start()
        player.wake()
        self.changed(guild_id)
        return player

    async def leave(self, guild_id: int, reason: str, *, quiet: bool = False) -> bool:
        player = self._guilds.pop(guild_id, None)
        if player is None:
            return False
        await player.close()
        log.info("guild %s: left voice (%s)", guild_id, reason)
        self.changed(guild_id)
        if not quiet and self.on_leave is not None:
            task = asyncio.create_task(self.on_leave(guild_id, reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def voice_state_changed(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        """A member moved in voice: count the channel again (and notice the bot gone)."""
        player = self._guilds.get(member.guild.id)
        if player is None:
            return
        me, channel = self.client.user, after.channel
        # From one channel to another (a reconnect of ours comes from no channel).
        to_another = before.channel is not None and channel not in (None, before.channel)
        if me is not None and member.id == me.id and to_another and channel is not None:
            player.moved(channel)
        player.wake()  # the bot itself removed or moved: the next round notices
        self.changed(member.guild.id)

    async def aclose(self) -> None:
        self._unsubscribe()
        for guild_id in list(self._guilds):
            await self.leave(guild_id, "shutdown", quiet=True)

    # --- SessionHooks -------------------------------------------------------------------

    async def session_started(self, session: Session) -> None:
        if not self.config.auto_join or session.guild_id in self._guilds:
            return
        guild = self.client.get_guild(session.guild_id)
        host = guild.get_member(session.host_user_id) if guild else None
        if host is None or host.voice is None or host.voice.channel is None:
            return
        try:
            await self.join(host.voice.channel, session.host_user_id, 1.0)
        except VoiceRefused as exc:
            log.info("guild %s: automatic voice join refused: %s", session.guild_id, exc)

    async def session_changed(self, session: Session) -> None:
        player = self._guilds.get(session.guild_id)
        if player is not None and player.host_id != session.host_user_id:
            player.host_id = session.host_user_id
            player.wake()

    async def session_ended(self, session: Session, reason: str) -> None:
        await self.leave(session.guild_id, "session ended", quiet=True)

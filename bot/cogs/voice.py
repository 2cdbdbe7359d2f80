"""/gamenight voice join|stop|volume, and the gateway events the voice player listens to."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.presence import PresenceListener
from bot.voice import VoicePlayers
from bot.voice_channel import VoiceRefused
from core.presence import PresenceBoard
from core.sessions import NotHost, SessionService

log = logging.getLogger(__name__)

PRESENCE_HELP = (
    "I can't see your Spotify in Discord, so I don't know what to play. In Discord, open "
    "User Settings → Connections → Spotify and switch on **Display Spotify as your status** "
    "(and keep Activity Privacy → *Share your detected activities* on). Then press play."
)
INTENT_HELP = (
    "I can't see anyone's Spotify status: the bot's operator must switch on the Presence "
    "Intent and the Server Members Intent in the Discord developer portal (Bot → Privileged "
    "Gateway Intents) and leave DISCORD_PRESENCE_INTENT on."
)


def _percent(volume: int | None) -> float:
    return 1.0 if volume is None else volume / 100


class VoiceCommands(app_commands.Group):
    """Play the host's music in their voice channel — nobody needs Spotify."""

    def __init__(
        self,
        sessions: SessionService,
        players: VoicePlayers,
        board: PresenceBoard,
        presence: PresenceListener,
    ) -> None:
        super().__init__(name="voice", description="Play the host's music in voice")
        self.sessions = sessions
        self.players = players
        self.board = board
        self.presence = presence

    async def _allowed(self, interaction: discord.Interaction, action: str) -> int:
        """The guild's session host, if the invoker may run voice commands."""
        guild_id = interaction.guild_id
        if guild_id is None:
            raise app_commands.NoPrivateMessage()
        session = await self.sessions.get(guild_id)
        if interaction.user.id != session.host_user_id and not (
            interaction.permissions.manage_guild
        ):
            raise NotHost(action)
        return session.host_user_id

    @app_commands.command(name="join")
    @app_commands.describe(volume="Loudness in percent (default 100)")
    async def join(
        self,
        interaction: discord.Interaction,
        volume: app_commands.Range[int, 1, 200] | None = None,
    ) -> None:
        """Join the host's voice channel and play their music there (host or Manage Server)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        host_id = await self._allowed(interaction, "bring me into voice")
        guild = interaction.guild
        host = guild.get_member(host_id) if guild else None
        if host is None or host.voice is None or host.voice.channel is None:
            who = "You're" if host_id == interaction.user.id else f"<@{host_id}> is"
            raise VoiceRefused(
                f"{who} not in a voice channel. Join one, then run /gamenight voice join again."
            )
        if not self.board.available:
            raise VoiceRefused(INTENT_HELP)
        # The cached activity, in case no update came since start (de-duplicated if it did).
        self.presence.seen(host.id, host.activities)
        player = await self.players.join(host.voice.channel, host_id, _percent(volume))
        text = f"🔊 Playing <@{host_id}>'s music in {host.voice.channel.mention}."
        presence = self.board.get(host_id)
        if presence is None or presence.listening is None:
            text += "\n" + PRESENCE_HELP
        if player.volume != 1.0:
            text += f" Volume {round(player.volume * 100)}%."
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="stop")
    async def stop(self, interaction: discord.Interaction) -> None:
        """Stop playing and leave the voice channel (host or Manage Server)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._allowed(interaction, "stop the voice playback")
        assert interaction.guild_id is not None
        if not await self.players.leave(interaction.guild_id, "stopped", quiet=True):
            raise VoiceRefused("I'm not in a voice channel here.")
        await interaction.followup.send("🔇 Left the voice channel.", ephemeral=True)

    @app_commands.command(name="volume")
    @app_commands.describe(percent="Loudness in percent (100 is the track's own level)")
    async def volume(
        self, interaction: discord.Interaction, percent: app_commands.Range[int, 1, 200]
    ) -> None:
        """Set the voice playback's volume (host or Manage Server)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._allowed(interaction, "change the volume")
        assert interaction.guild_id is not None
        player = self.players.get(interaction.guild_id)
        if player is None:
            raise VoiceRefused("I'm not in a voice channel here. Start with /gamenight voice join.")
        player.set_volume(_percent(percent))
        await interaction.followup.send(f"🔊 Volume {percent}%.", ephemeral=True)


_LEAVE_NOTES = {
    "empty": "🔇 Everyone left the voice channel, so I left too.",
    "lost": "🔇 I lost the voice connection and couldn't get back in. "
    "Run /gamenight voice join to bring me back.",
    "error": "🔇 Voice playback failed, so I left the voice channel.",
}


class VoiceWatch(commands.Cog):
    """Voice-state events for the voice players (members leaving, the bot moved)."""

    def __init__(self, players: VoicePlayers, sessions: SessionService) -> None:
        self.players = players
        self.sessions = sessions

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        self.players.voice_state_changed(member, before, after)

    async def cog_unload(self) -> None:
        await self.players.aclose()

    async def tell(self, guild_id: int, reason: str) -> None:
        """Say in the game night's channel why the bot left voice."""
        note = _LEAVE_NOTES.get(reason)
        session = await self.sessions.find(guild_id)
        if note is None or session is None or session.channel_id is None:
            return
        channel = self.players.client.get_partial_messageable(session.channel_id)
        try:
            await channel.send(note)
        except discord.HTTPException as exc:
            log.info("guild %s: could not say why voice ended: %s", guild_id, exc)

"""/gamenight: start, join, leave, stop, status, host and resync, plus the Join/Leave buttons."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.presence import presence_note
from bot.replies import for_discord, report_error, send_link
from bot.status import StatusBoard, render_status
from bot.web.listen import ListenLinks
from core.errors import UserFacingError
from core.presence import PresenceBoard
from core.sessions import SessionService
from core.spotify.quota import QuotaGovernor
from storage.records import Session

log = logging.getLogger(__name__)

JOIN_ID = "gamenight:join"
LEAVE_ID = "gamenight:leave"


class SessionButtons(discord.ui.View):
    """Join / Leave under the status message; persistent (fixed custom_ids, no timeout)."""

    def __init__(self, cog: GameNight | None = None) -> None:
        super().__init__(timeout=None)
        self.cog = cog

    @discord.ui.button(
        label="Join", emoji="🎧", style=discord.ButtonStyle.success, custom_id=JOIN_ID
    )
    async def join_button(
        self, interaction: discord.Interaction, button: discord.ui.Button[SessionButtons]
    ) -> None:
        assert self.cog is not None, "display-only copy of the view received a click"
        await self.cog.do_join(interaction)

    @discord.ui.button(label="Leave", style=discord.ButtonStyle.secondary, custom_id=LEAVE_ID)
    async def leave_button(
        self, interaction: discord.Interaction, button: discord.ui.Button[SessionButtons]
    ) -> None:
        assert self.cog is not None, "display-only copy of the view received a click"
        await self.cog.do_leave(interaction)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        await report_error(interaction, error)


def _guild_id(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


@app_commands.guild_only()
class GameNight(commands.GroupCog, group_name="gamenight"):
    """Listen to the host's Spotify together during a game night."""

    def __init__(
        self,
        sessions: SessionService,
        board: StatusBoard,
        listen: ListenLinks,
        quota: QuotaGovernor | None = None,
        *,
        presence: PresenceBoard | None = None,
    ) -> None:
        self.quota = quota  # the Spotify call budget, shown by /gamenight status
        self.sessions = sessions
        self.presence = presence  # its note says why Discord presence is off, if it is
        self.board = board
        self.listen_links = listen
        self.buttons = SessionButtons(self)
        super().__init__()

    async def cog_load(self) -> None:
        self.sessions.subscribe(self.board)

    async def cog_unload(self) -> None:
        self.sessions.unsubscribe(self.board)
        self.buttons.stop()
        await self.board.aclose()

    # --- commands -----------------------------------------------------------------------

    @app_commands.command(name="start")
    async def start(self, interaction: discord.Interaction) -> None:
        """Start a game night here, with you as the host."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            raise UserFacingError("Start the game night from a text channel.")
        session = await self.sessions.start(
            _guild_id(interaction), interaction.user.id, interaction.channel_id
        )
        try:
            message = await self.board.post(session, channel)
        except discord.HTTPException as exc:
            await self.sessions.abandon(session)
            log.info("guild %s: cannot post the status message: %s", session.guild_id, exc)
            raise UserFacingError(
                "I can't post in this channel. Give me Send Messages and Embed Links here, "
                "or start the game night in another channel."
            ) from exc
        await interaction.followup.send(
            f"🎶 Game night started — you're the host. Status and Join button: {message.jump_url}",
            ephemeral=True,
        )

    @app_commands.command(name="join")
    async def join(self, interaction: discord.Interaction) -> None:
        """Join the game night and follow the host's playback."""
        await self.do_join(interaction)

    @app_commands.command(name="leave")
    async def leave(self, interaction: discord.Interaction) -> None:
        """Leave the game night; your Spotify is yours again."""
        await self.do_leave(interaction)

    @app_commands.command(name="stop")
    async def stop(self, interaction: discord.Interaction) -> None:
        """End the game night (host or Manage Server)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.sessions.stop(
            _guild_id(interaction),
            interaction.user.id,
            can_manage=interaction.permissions.manage_guild,
        )
        await interaction.followup.send("Game night ended. Thanks for listening!", ephemeral=True)

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """Show who is listening and what is playing."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        session = await self.sessions.get(_guild_id(interaction))
        await self.board.refresh(session)  # also re-posts a status message someone deleted
        session = await self.sessions.get(session.guild_id)
        track, playing = await self.board.now_playing(session)
        lines = [self._where(session), presence_note(self.presence)]
        if self.quota is not None:  # "Spotify calls today: 312 of 3,000", shared by processes
            lines.append(for_discord((await self.quota.refresh()).line()))
        await interaction.followup.send(
            "\n".join(line for line in lines if line),
            embed=render_status(
                session,
                track,
                playing,
                await self.board.browser_listeners(session),
                voice=self.board.voice_line(session.guild_id),
            ),
            ephemeral=True,
        )

    @app_commands.command(name="host")
    @app_commands.describe(member="Who should host from now on")
    async def host(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Hand the host role to someone else (host or Manage Server)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        if member.bot:
            raise UserFacingError("Bots can't host a game night.")
        await self.sessions.hand_over(
            _guild_id(interaction),
            interaction.user.id,
            member.id,
            can_manage=interaction.permissions.manage_guild,
        )
        await interaction.followup.send(
            f"{member.mention} is the host now; everyone follows their Spotify.", ephemeral=True
        )

    @app_commands.command(name="resync")
    async def resync(self, interaction: discord.Interaction) -> None:
        """Follow the host again after you played something else (host: everyone)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        done = await self.sessions.resync(_guild_id(interaction), interaction.user.id)
        if interaction.user.id == done.session.host_user_id and not done.user_ids:
            text = "Everyone who can follow you already does: nobody to re-sync."
        elif interaction.user.id == done.session.host_user_id:
            # A listener who must act (Premium, /link, open Spotify) was told so once and is
            # not counted or pestered again.
            text = f"Re-syncing {len(done.user_ids)} listener(s) to your playback."
        else:
            text = "Re-syncing you to the host's playback."
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="listen")
    async def listen(self, interaction: discord.Interaction) -> None:
        """Listen along in your browser — no Spotify Premium needed."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        url = await self.listen_links.link(_guild_id(interaction))
        text = (
            "Listen along in your browser: it plays the host's music in sync and works until "
            "the game night ends. Share it only with people in this server."
        )
        await send_link(interaction, text, url, label="Open the listen page", emoji="🌐")

    # --- shared by commands and buttons -------------------------------------------------

    async def do_join(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        session = await self.sessions.join(_guild_id(interaction), interaction.user.id)
        await interaction.followup.send(
            f"🎧 You're in! Keep Spotify open on a device — it will follow "
            f"<@{session.host_user_id}>'s playback. Leave any time.",
            ephemeral=True,
        )

    async def do_leave(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.sessions.leave(_guild_id(interaction), interaction.user.id)
        await interaction.followup.send(
            "You left the game night. Your Spotify is yours again.", ephemeral=True
        )

    @staticmethod
    def _where(session: Session) -> str:
        if session.channel_id is None or session.status_message_id is None:
            return ""
        return (
            f"Status message: https://discord.com/channels/{session.guild_id}/"
            f"{session.channel_id}/{session.status_message_id}"
        )

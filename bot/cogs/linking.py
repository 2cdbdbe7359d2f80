"""/link, /unlink and /me: connect a Spotify account and check on it."""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol

import discord
from discord import app_commands
from discord.ext import commands

from bot.replies import for_discord, send_link
from core.errors import UserFacingError
from core.linking import Linker
from core.sessions import NotListening, SessionService
from core.spotify.models import Profile
from storage.records import LinkStatus

log = logging.getLogger(__name__)


_STATUS_TEXT = {
    LinkStatus.OK: "✅ Linked",
    LinkStatus.NEEDS_RELINK: "🔑 Expired — run /link again",
    LinkStatus.PREMIUM_REQUIRED: "🔒 Linked, but Spotify says this account has no Premium, so "
    "the bot can't control its playback. In a game night, /gamenight listen plays along in "
    "your browser instead.",
}


NO_SPOTIFY_APP = (
    "Linking Spotify needs this bot's Spotify app settings (SPOTIFY_CLIENT_ID and "
    "SPOTIFY_CLIENT_SECRET), which its operator hasn't set. You don't need it to listen: "
    "/gamenight voice join plays the host's music in their voice channel, and "
    "/gamenight listen opens it in a browser."
)


class Profiles(Protocol):
    """A live check of a link (SpotifyClient.profile satisfies it)."""

    async def profile(self, discord_user_id: int) -> Profile: ...


class Linking(commands.Cog):
    """Link your Spotify account to Game Night."""

    def __init__(self, linker: Linker, sessions: SessionService, profiles: Profiles) -> None:
        self.linker = linker
        self.sessions = sessions
        self.profiles = profiles

    @app_commands.command(name="link")
    async def link(self, interaction: discord.Interaction) -> None:
        """Link your Spotify account so Game Night can follow and control your playback."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        if not self.sessions.spotify_accounts:
            raise UserFacingError(NO_SPOTIFY_APP)
        url = await self.linker.begin(interaction.user.id, interaction.guild_id)
        text = (
            "Open Spotify to link your account. The link is just for you, works once "
            "and expires in 10 minutes."
        )
        await send_link(interaction, text, url, label="Link Spotify", emoji="🔗")

    @app_commands.command(name="unlink")
    async def unlink(self, interaction: discord.Interaction) -> None:
        """Forget your Spotify account and its tokens."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        user_id = interaction.user.id
        if interaction.guild_id is not None:
            session = await self.sessions.find(interaction.guild_id)
            if session is not None and session.host_user_id == user_id:
                raise UserFacingError(
                    "You're hosting a game night here. Hand over with /gamenight host or end it "
                    "with /gamenight stop, then unlink."
                )
            if session is not None:
                # leave() checks under the session's lock; a Leave click in between is fine.
                with contextlib.suppress(NotListening):
                    await self.sessions.leave(interaction.guild_id, user_id)
        if await self.linker.unlink(user_id):
            text = "Unlinked. Your Spotify tokens are deleted; /link any time to come back."
        else:
            text = "You had no Spotify account linked."
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="me")
    async def me(self, interaction: discord.Interaction) -> None:
        """Show your Spotify link and whether it works."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        link = await self.linker.link(interaction.user.id)
        if link is None:
            await interaction.followup.send(
                "You haven't linked Spotify yet — run /link.", ephemeral=True
            )
            return
        embed = discord.Embed(title="Your Spotify link", colour=discord.Colour(0x1DB954))
        embed.add_field(name="Account", value=f"{link.display_name} ({link.spotify_user_id})")
        embed.add_field(name="Status", value=_STATUS_TEXT[link.status], inline=False)
        embed.add_field(name="Linked", value=f"<t:{int(link.linked_at)}:R>")
        if link.status is not LinkStatus.NEEDS_RELINK:
            try:
                profile = await self.profiles.profile(interaction.user.id)
                health = f"✅ Spotify answers for {profile.display_name}"
            except UserFacingError as exc:
                health = f"⚠️ {for_discord(exc.message)}"
            embed.add_field(name="Health", value=health, inline=False)
        if link.status is LinkStatus.OK:
            embed.set_footer(
                text="Following the host needs Spotify Premium. Without it, "
                "/gamenight listen plays along in your browser."
            )
        await interaction.followup.send(embed=embed, ephemeral=True)

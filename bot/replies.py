"""The one error path for Discord: every failure becomes an ephemeral, specific answer.

Like Red-DiscordBot's tree.py: a `UserFacingError` shows its message; Discord's own check
failures get a plain sentence; anything else is logged with its traceback and answered with a
generic apology, never a traceback. Replies check `response.is_done()` and fall back to an
ephemeral followup, so it works before and after a deferral.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import discord
from discord import app_commands

from core.errors import STORAGE_DOWN, UserFacingError
from core.timetext import render_times
from storage.errors import StorageUnavailable

log = logging.getLogger(__name__)

GENERIC = "Something went wrong on our side. It has been logged — please try again in a moment."


async def send_private(interaction: discord.Interaction[Any], content: str, **kwargs: Any) -> None:
    """Answer only the person who asked, whether or not the interaction was deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)


def discord_time(at: float) -> str:
    """A wall-clock time as Discord shows it: in each reader's own zone, with "in 14 hours"."""
    return f"<t:{int(at)}:t> (<t:{int(at)}:R>)"


def for_discord(text: str) -> str:
    """`text` with a time it names (a core TimedText) in the reader's zone, not the server's."""
    return render_times(text, discord_time)


LINK_BUTTON_URL_LIMIT = 512  # Discord refuses longer link-button URLs


async def send_link(
    interaction: discord.Interaction[Any], text: str, url: str, *, label: str, emoji: str
) -> None:
    """`text` with `url` as a link button, or as a plain <url> where a button cannot hold it."""
    if len(url) <= LINK_BUTTON_URL_LIMIT:
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label=label, emoji=emoji, url=url))
        await send_private(interaction, text, view=view)
    else:
        await send_private(interaction, f"{text}\n<{url}>")


def user_message(error: BaseException) -> str | None:
    """The message a user should see for `error`, or None for an unexpected failure."""
    if isinstance(error, app_commands.CommandInvokeError | app_commands.TransformerError):
        error = error.__cause__ or error
    if isinstance(error, UserFacingError):
        return for_discord(error.message)
    if isinstance(error, StorageUnavailable):
        # Only an outage: "your data is safe" would be a lie for a corrupt or unreadable row.
        return STORAGE_DOWN
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"You need the {needed} permission for that."
    if isinstance(error, app_commands.BotMissingPermissions):
        needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"I need the {needed} permission in this channel."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down — try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
    return None


async def report_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    message = user_message(error)
    cause = error.__cause__ if isinstance(error, app_commands.CommandInvokeError) else error
    if message is None:
        log.error(
            "interaction %s (%s) by user %s failed",
            interaction.id,
            _describe(interaction),
            interaction.user.id,
            exc_info=cause,
        )
        message = GENERIC
    try:
        await send_private(interaction, message)
    except discord.HTTPException as exc:
        # Past Discord's deadline or the token expired: nothing left to answer on.
        log.warning("could not tell user %s about a failure: %s", interaction.user.id, exc)


def _describe(interaction: discord.Interaction[Any]) -> str:
    if interaction.command is not None:
        return "/" + interaction.command.qualified_name
    data: Mapping[str, object] = interaction.data or {}
    if "custom_id" in data:
        return f"button {data['custom_id']}"
    return "interaction"

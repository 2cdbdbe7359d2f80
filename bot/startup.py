"""The operator's first minute: start-up checks, quiet logs and one "ready" line.

A wrong Spotify id or secret is found here with one client-credentials token request (the token
is kept and reused by the resolver, so the check costs no extra Web API call), not by the first
player who runs /link. The redirect URI's form is checked by Settings; here we only warn about
one that works solely in a browser on this machine. Once Discord is connected, one line says
who the bot is, where it is, where its slash commands are registered and how to invite it.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import aiohttp
import discord
from discord.ext import commands

from bot.settings import Settings
from core.errors import Misconfigured, RateLimited, SpotifyError, Upstream
from core.spotify.client import SpotifyClient

log = logging.getLogger("bot")

CALLBACK_PATH = "/spotify/callback"
# What the bot does in a channel (README, "Setting it up for real"): post and edit the status
# embed and find it again after a restart. Voice adds Connect and Speak where it is enabled.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, read_message_history=True
)
GUILDS_NAMED = 5  # the ready line names this many guilds, then counts the rest


class StartupError(Exception):
    """Game Night cannot start; the message is one line that says what to fix."""


async def check_spotify(settings: Settings, spotify: SpotifyClient) -> None:
    """Fetch the app token once: wrong credentials or no route to Spotify stop the start."""
    try:
        await spotify.app_token.current()
    except Misconfigured:
        raise StartupError(
            "Spotify refused SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET (invalid_client): copy "
            "both again from the Spotify developer dashboard (your app -> Settings)"
        ) from None
    except RateLimited as exc:  # the credentials were accepted far enough to be rate limited
        log.warning("Spotify asks to wait %.0f s; credentials not checked", exc.retry_after)
    except Upstream as exc:
        raise StartupError(
            f"cannot reach Spotify at {settings.spotify_accounts_base}: {exc.message}"
        ) from None
    except SpotifyError as exc:  # any other refusal: its own words, never a traceback
        raise StartupError(f"checking the Spotify app token failed: {exc.message}") from None


async def check_spotify_settings(settings: Settings, spotify: SpotifyClient, *, bot: bool) -> None:
    """The Spotify app is optional (#16): checked and its redirect URI warned about when set,
    else one warning says what is off in this role (`bot`: the bot, else web-only)."""
    if not settings.spotify_app:
        log.warning("%s", without_spotify_app(bot=bot))
        return
    await check_spotify(settings, spotify)
    for warning in redirect_warnings(settings):
        log.warning("%s", warning)


def redirect_warnings(settings: Settings) -> list[str]:
    """What about the redirect URI will surprise players (Settings refused the impossible)."""
    uri = urlsplit(settings.spotify_redirect_uri)
    warnings = []
    if uri.path.rstrip("/") != CALLBACK_PATH:
        warnings.append(
            f"SPOTIFY_REDIRECT_URI ends in {uri.path or '/'!r}, but this server answers on "
            f"{CALLBACK_PATH}: /link will fail unless your proxy rewrites the path"
        )
    if uri.scheme == "http":
        warnings.append(
            f"the Spotify callback is {settings.spotify_redirect_uri}, which only a browser on "
            "this machine can open: set PUBLIC_BASE_URL to a public https:// address so players "
            "can /link from their own devices (README: 'A public HTTPS address')"
        )
    return warnings


def without_spotify_app(*, bot: bool) -> str:
    """The start-up line of a process run without the Spotify app keys: what is off."""
    off = (
        "/link, following the host on one's own Spotify, and looking up tracks by id that "
        "are not cached yet are off; game nights follow the host's Discord presence"
        if bot
        else "Spotify linking and looking up tracks by id that are not cached yet are off; "
        "/song matches the title and artists the client sends"
    )
    return f"SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are not set: {off} (see .env.example)"


# The developer portal's names for the privileged intents, in the portal's order.
PRIVILEGED_INTENTS = (
    ("presences", "Presence Intent"),
    ("members", "Server Members Intent"),
    ("message_content", "Message Content Intent"),
)


def start_failure(
    error: BaseException, settings: Settings, intents: discord.Intents | None = None
) -> str | None:
    """One line for a Discord connection that failed in a way the operator can fix;
    `intents` are the ones the bot asked for (the refusal names exactly those)."""
    if isinstance(error, discord.LoginFailure):
        return "Discord refused the bot token: check DISCORD_TOKEN"
    if isinstance(error, discord.PrivilegedIntentsRequired):
        wanted = [label for flag, label in PRIVILEGED_INTENTS if getattr(intents, flag, False)] or [
            label for _, label in PRIVILEGED_INTENTS
        ]
        return (
            f"Discord refused the privileged intents: switch on {' and '.join(wanted)} "
            "(developer portal -> your application -> Bot)"
        )
    if isinstance(error, OSError | aiohttp.ClientError | discord.GatewayNotFound | TimeoutError):
        return f"cannot reach Discord at {settings.discord_api_base}: {_reason(error)}"
    if isinstance(error, discord.DiscordServerError):
        return f"Discord is having trouble ({error.status}); try again in a few minutes"
    return None


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__


class ReconnectNotice(logging.Filter):
    """discord.py logs every gateway reconnect with a full traceback (`_log.exception`): turn
    it into one WARNING line that names the cause."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Attempting a reconnect in %.2fs" and record.exc_info:
            error = record.exc_info[1]
            record.msg = "lost the Discord connection (%s); reconnecting in %.0f s"
            record.args = (_reason(error) if error else "unknown", *(record.args or ()))
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def quiet_discord_logs(*, voice_enabled: bool = False) -> None:
    """Install the reconnect filter (once) and decide about discord.py's voice warnings.

    discord.py warns at every start that PyNaCl and davey are missing. That is noise while
    voice is off; with voice on, a missing one is worth a warning that says what to install.
    """
    client_log = logging.getLogger("discord.client")
    if not any(isinstance(f, ReconnectNotice) for f in client_log.filters):
        client_log.addFilter(ReconnectNotice())
    voice = discord.VoiceClient
    missing = [
        name for name, flag in (("PyNaCl", voice.warn_nacl), ("davey", voice.warn_dave)) if flag
    ]
    voice.warn_nacl = voice.warn_dave = False
    if voice_enabled and missing:
        log.warning("voice needs %s: pip install %s", " and ".join(missing), " ".join(missing))


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(
        application_id,
        permissions=INVITE_PERMISSIONS,
        scopes=("bot", "applications.commands"),
    )


async def commands_where(bot: commands.Bot, dev_guild_id: int | None) -> str:
    """Where the slash commands are registered, in words an operator can act on."""
    places = []
    if dev_guild_id is not None:
        places.append(f"development guild {dev_guild_id} (DISCORD_DEV_GUILD_ID)")
    try:
        registered = await bot.tree.fetch_commands()
    except discord.HTTPException as exc:
        log.info("could not list the global commands: %s", exc)
        registered = None
    if registered:
        places.append(f"globally ({len(registered)})")
    if places:
        return "slash commands in " + " and ".join(places)
    if registered is None:
        return "slash commands: could not check"
    return (
        "slash commands NOT registered: as the bot's owner, mention it with `sync` in any "
        "channel it can read (@Bot sync), or set DISCORD_DEV_GUILD_ID for one test server"
    )


def ready_line(bot: discord.Client, where: str) -> str:
    names = sorted(g.name for g in bot.guilds)
    shown = ", ".join(names[:GUILDS_NAMED])
    if len(names) > GUILDS_NAMED:
        shown += f" and {len(names) - GUILDS_NAMED} more"
    guilds = f"in {len(names)} guild(s): {shown}" if names else "in no guild yet"
    app_id = bot.application_id or (bot.user.id if bot.user else 0)
    return f"ready as {bot.user} {guilds}; {where}; invite: {invite_url(app_id)}"


async def announce_ready(bot: commands.Bot, dev_guild_id: int | None) -> None:
    """Log the ready line once, after the first READY and its guilds."""
    await bot.wait_until_ready()
    log.info("%s", ready_line(bot, await commands_where(bot, dev_guild_id)))


def start_announcer(bot: commands.Bot, dev_guild_id: int | None) -> asyncio.Task[None]:
    return asyncio.create_task(announce_ready(bot, dev_guild_id), name="ready-line")

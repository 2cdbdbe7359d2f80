"""The doctor's checks of one thing each (settings, storage, Discord, Spotify, yt-dlp's needs):
each returns a `Check` that says what it found and, when it failed, the fix.

bot/doctor.py runs them (and the online smoke test) and prints the checklist.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

import storage
from bot.keyfile import KEY_FILE, KeyFileError, data_folder, with_stored_key
from bot.settings import Settings
from core.youtube import YouTube, YouTubeConfig
from storage.crypto import TokenCipher

# yt-dlp older than this is likely broken for YouTube (about 15 releases a year; yt-dlp #10455).
YT_DLP_MAX_AGE_DAYS = 90
SPOTDL_MIN = (4, 6)
TIMEOUT = aiohttp.ClientTimeout(total=15)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # passed, but worth a look (printed with its fix; exit code unchanged)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_versions(yt_dlp: str, spotdl: str, today: dt.date) -> list[Check]:
    """Pure: whether the installed yt-dlp is recent enough and spotDL is 4.6 or newer."""
    update = "pip install -U 'yt-dlp[default]' (Docker: rebuild the image); see README"
    checks = []
    try:
        year, month, day = _version_tuple(yt_dlp)[:3]
        age = (today - dt.date(year, month, day)).days
    except (TypeError, ValueError):
        checks.append(Check("yt-dlp version", False, f"unreadable version {yt_dlp!r}", update))
    else:
        checks.append(
            Check(
                "yt-dlp version",
                age <= YT_DLP_MAX_AGE_DAYS,
                f"{yt_dlp} ({age} days old)",
                ""
                if age <= YT_DLP_MAX_AGE_DAYS
                else f"older than {YT_DLP_MAX_AGE_DAYS} days breaks on YouTube: {update}",
            )
        )
    ok = _version_tuple(spotdl)[:2] >= SPOTDL_MIN
    checks.append(
        Check(
            "spotDL version",
            ok,
            spotdl,
            ""
            if ok
            else "spotDL < 4.6 finds nothing when YouTube Music answers in German: "
            "pip install -U 'spotdl>=4.6,<4.7'",
        )
    )
    return checks


def check_redirect_uri(settings: Settings) -> Check:
    uri = settings.spotify_redirect_uri
    fix = (
        f"set SPOTIFY_REDIRECT_URI to https://<your host>/spotify/callback (or "
        f"http://127.0.0.1:{settings.http_port}/spotify/callback) and add exactly that URI "
        "to the Spotify app's Redirect URIs"
    )
    parts = urlsplit(uri)
    allowed = parts.scheme == "https" and bool(parts.netloc)
    if parts.scheme == "http" and parts.hostname:
        try:  # plain HTTP only on a loopback IP literal; Spotify refuses `localhost`
            allowed = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            allowed = False
    if not allowed:
        return Check("Spotify redirect URI", False, f"{uri} is refused by Spotify", fix)
    if parts.path.rstrip("/") != "/spotify/callback":
        return Check("Spotify redirect URI", False, f"{uri} is not this server's callback", fix)
    return Check(
        "Spotify redirect URI",
        True,
        f"{uri} (it must also be listed in the Spotify app's settings)",
    )


def check_public_base_url(settings: Settings) -> Check:
    """Relay URLs (`/song` answers, the listen page's audio) are made on PUBLIC_BASE_URL: a
    loopback address only works for a browser on this very machine."""
    base = settings.public_base_url
    host = urlsplit(base).hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        return Check("public base URL", True, base)
    return Check(
        "public base URL",
        True,
        f"{base}: relay URLs only play in a browser on this machine",
        "on a server, set PUBLIC_BASE_URL to the address browsers use (https://your.host)",
        warn=True,
    )


async def check_storage(settings: Settings) -> Check:
    fix = "check STORAGE_URL: the SQLite file's directory must be writable, Redis reachable"
    note, cipher = "", TokenCipher.generate()  # no key yet: the doctor must not create one
    try:
        keyed = with_stored_key(settings) if _key_exists(settings) else settings
    except KeyFileError as exc:
        return Check("storage", False, str(exc), "see TOKEN_ENCRYPTION_KEY in README")
    if keyed.token_encryption_key:
        cipher = keyed.cipher()
    else:
        note = " (TOKEN_ENCRYPTION_KEY unset: a key will be generated on first start)"
    try:
        async with asyncio.timeout(15):
            store = await storage.open_storage(settings.storage_url, cipher)
            try:
                await store.ping()
            finally:
                await store.aclose()
    except Exception as exc:  # any failure is the finding; the checklist shows it
        return Check("storage", False, f"{type(exc).__name__}: {exc}", fix)
    return Check("storage", True, urlsplit(settings.storage_url).scheme + " answers" + note)


def _key_exists(settings: Settings) -> bool:
    """A key is set, the data folder has one, or there is no data folder (with_stored_key says)."""
    folder = data_folder(settings.storage_url)
    return bool(settings.token_encryption_key) or folder is None or (folder / KEY_FILE).exists()


async def check_discord(settings: Settings, http: aiohttp.ClientSession) -> Check:
    fix = (
        "Discord developer portal -> your application -> Bot -> Reset Token, then set DISCORD_TOKEN"
    )
    if not settings.discord_token:  # only loadable so with --web
        return Check("Discord token", True, "not set: a web-only deployment (python -m bot web)")
    url = f"{settings.discord_api_base}/users/@me"
    try:
        headers = {"Authorization": f"Bot {settings.discord_token}"}
        async with http.get(url, headers=headers, timeout=TIMEOUT) as r:
            if r.status == 401:
                return Check("Discord token", False, "Discord refused the token (401)", fix)
            if r.status != 200:
                return Check("Discord token", False, f"Discord answered {r.status}", fix)
            me = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Check("Discord token", False, f"Discord unreachable: {exc!r}", "check networking")
    except ValueError:  # not JSON: a proxy's error page, a wrong DISCORD_API_BASE
        return Check("Discord token", False, "Discord's answer was not JSON", _API_BASE_FIX)
    if not isinstance(me, dict):
        return Check("Discord token", False, "Discord's answer was not a user", _API_BASE_FIX)
    return Check("Discord token", True, f"bot user {me.get('username', '?')}")


_API_BASE_FIX = "check DISCORD_API_BASE (unset: Discord's own) and any proxy in between"


async def check_spotify_app(settings: Settings, http: aiohttp.ClientSession) -> Check:
    fix = (
        "copy Client ID and Client Secret from the Spotify developer dashboard -> your app -> "
        "Settings into SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET"
    )
    url = f"{settings.spotify_accounts_base}/api/token"
    credentials = f"{settings.spotify_client_id}:{settings.spotify_client_secret}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
    try:
        async with http.post(
            url, data={"grant_type": "client_credentials"}, headers=headers, timeout=TIMEOUT
        ) as r:
            if r.status != 200:
                body = await r.text()
                error = "invalid_client" if "invalid_client" in body else f"HTTP {r.status}"
                return Check("Spotify app credentials", False, f"Spotify said {error}", fix)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Check("Spotify app credentials", False, f"unreachable: {exc!r}", "networking")
    return Check("Spotify app credentials", True, "client-credentials token granted")


def check_js_runtime(config: YouTubeConfig) -> Check:
    youtube = YouTube(config=config)
    try:
        runtime = youtube.js_runtime()
    finally:
        youtube.close()
    if runtime is None:
        return Check(
            "JavaScript runtime",
            False,
            "yt-dlp finds none: YouTube extraction falls back to very few player clients",
            "pip install deno (a dependency of Game Night: reinstall with `make install`)",
        )
    return Check("JavaScript runtime", True, runtime)


async def check_pot_provider(url: str, http: aiohttp.ClientSession) -> Check:
    fix = (
        "start the provider (docker compose --profile pot up -d bgutil-provider) or correct "
        "YOUTUBE_POT_PROVIDER_URL"
    )
    try:
        async with http.get(f"{url.rstrip('/')}/ping", timeout=TIMEOUT) as r:
            if r.status != 200:
                return Check("PO-token provider", False, f"{url}/ping answered {r.status}", fix)
            data = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Check("PO-token provider", False, f"{url} unreachable: {exc!r}", fix)
    version = data.get("version", "?") if isinstance(data, dict) else "?"
    return Check("PO-token provider", True, f"{url} answers (version {version})")

"""Settings: the one place that reads the environment.

`load_settings()` reads `.env` (python-dotenv; real environment variables win), validates every
key and returns a frozen `Settings`. All problems are collected and reported together, so an
operator fixes a broken configuration in one pass instead of one restart per missing key.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

from storage.crypto import TokenCipher

T = TypeVar("T")

DEFAULT_STORAGE_URL = "sqlite:///data/gamenight.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The keys without a default that must be set. The bot needs only these: without the Spotify
# app keys it follows hosts through their Discord presence (voice, listen page) and /link
# says what is missing. The indexer talks to Spotify, never to Discord.
BOT_KEYS = frozenset({"DISCORD_TOKEN", "TOKEN_ENCRYPTION_KEY"})
SPOTIFY_APP_KEYS = frozenset({"SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"})
INDEXER_KEYS = SPOTIFY_APP_KEYS | {"TOKEN_ENCRYPTION_KEY"}


class SettingsError(Exception):
    """The configuration is incomplete or invalid; `problems` names every bad key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    def report(self) -> str:
        lines = ["Game Night cannot start: the configuration needs attention."]
        lines += [f"  - {p}" for p in self.problems]
        lines.append("Set these in the environment or in a .env file (see .env.example).")
        return "\n".join(lines)


@dataclass(frozen=True)
class Settings:
    discord_token: str = field(repr=False)
    spotify_client_id: str
    spotify_client_secret: str = field(repr=False)
    token_encryption_key: str = field(repr=False)
    public_base_url: str = "http://127.0.0.1:8000"
    spotify_redirect_uri: str = "http://127.0.0.1:8000/spotify/callback"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    storage_url: str = DEFAULT_STORAGE_URL
    cors_origins: tuple[str, ...] = ("*",)
    log_level: str = "INFO"
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str | None = None
    discord_dev_guild_id: int | None = None
    spotify_api_base: str = "https://api.spotify.com"
    spotify_accounts_base: str = "https://accounts.spotify.com"
    stream_cache_max_entries: int = 10_000
    resolver_workers: int = 4
    youtube_base_url: str | None = None  # a YouTube stand-in (sandbox); None is the real one
    sync_poll_interval_s: float = 1.0
    sync_drift_threshold_ms: int = 1500
    host_idle_timeout_s: float = 1800.0
    http_rate_per_s: float = 2.0  # per-client sustained rate on endpoints that can resolve
    http_rate_burst: int = 60  # per-client burst on those endpoints
    spotify_workers: int = 32  # spotipy threads: a sync fan-out waiting for one lands late
    sync_drift_check_interval_s: float = 15.0  # read each listener this often while playing
    spotify_rate_limit: int = 150  # Web API calls per rolling 30 s, for the whole app
    voice_auto_join: bool = False  # join the host's voice channel when a session starts
    voice_empty_timeout_s: float = 60.0  # leave voice after it has been empty this long

    @property
    def spotify_app(self) -> bool:
        """Spotify app keys set: linking and Spotify-account sync are available."""
        return bool(self.spotify_client_id and self.spotify_client_secret)

    def cipher(self) -> TokenCipher:
        return TokenCipher.from_keys(self.token_encryption_key)


class _Reader:
    """Reads typed values from a mapping and remembers every problem instead of stopping."""

    def __init__(self, env: Mapping[str, str], required: Collection[str]) -> None:
        self.env = env
        self.needed = required
        self.problems: list[str] = []

    def raw(self, key: str) -> str | None:
        value = self.env.get(key)
        return value.strip() if value is not None and value.strip() else None

    def required(self, key: str, what: str) -> str:
        value = self.raw(key)
        if value is None:
            if key in self.needed:
                self.problems.append(f"{key} is missing ({what})")
            return ""
        return value

    def parsed(
        self,
        key: str,
        default: T,
        parse: Callable[[str], T],
        expected: str,
        *,
        secret: bool = False,
    ) -> T:
        """`secret` keeps the value out of the report (it goes to stderr and container logs)."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            shown = key if secret else f"{key}={value!r}"
            self.problems.append(f"{shown} is not valid: expected {expected}")
            return default


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(value)
    return port


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(value)
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError(value)
    return number


def _bool(value: str) -> bool:
    answers = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    return answers[value.lower()] if value.lower() in answers else _bool_error(value)


def _bool_error(value: str) -> bool:
    raise ValueError(value)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(value)
    return value.rstrip("/")


def _ws_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(value)
    return value


def _storage_url(value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in ("sqlite", "redis", "rediss"):
        raise ValueError(value)
    return value


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise ValueError(value)
    return level


def _redirect_uri(value: str) -> str:
    # Spotify accepts only HTTPS redirect URIs, or plain HTTP on a loopback IP literal
    # (it rejects `localhost` since 2025).
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.netloc:
        return value
    if parts.scheme == "http" and parts.hostname:
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                return value
        except ValueError:
            pass
    raise ValueError(value)


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    if not origins:
        raise ValueError(value)
    return origins


def _fernet_keys(value: str) -> str:
    TokenCipher.from_keys(value)  # raises ValueError on a malformed key
    return value


def load_settings(
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | Path | None = ".env",
    *,
    required: Collection[str] = BOT_KEYS,
) -> Settings:
    """Read and validate the configuration; raise SettingsError naming every problem.

    `required` names the keys without a default that must be set (e.g. INDEXER_KEYS); the
    others, when missing, are left empty.
    """
    env: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    r = _Reader(env, required)

    discord_token = r.required("DISCORD_TOKEN", "the bot token from the Discord developer portal")
    client_id = r.required("SPOTIFY_CLIENT_ID", "from the Spotify developer dashboard")
    client_secret = r.required("SPOTIFY_CLIENT_SECRET", "from the Spotify developer dashboard")
    if bool(client_id) != bool(client_secret):  # optional for the bot, but as a pair
        r.problems.append("SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET go together: set both")
    key = r.required(
        "TOKEN_ENCRYPTION_KEY",
        "encrypts Spotify tokens at rest; make one with "
        "`python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'`",
    )
    if key:
        key = r.parsed(
            "TOKEN_ENCRYPTION_KEY",
            "",
            _fernet_keys,
            "one or more Fernet keys, comma-separated",
            secret=True,
        )

    http_port = r.parsed("HTTP_PORT", 8000, _port, "a TCP port (1-65535)")
    public_base = r.parsed(
        "PUBLIC_BASE_URL", f"http://127.0.0.1:{http_port}", _http_url, "an http(s):// URL"
    )
    redirect = r.parsed(
        "SPOTIFY_REDIRECT_URI",
        f"{public_base}/spotify/callback",
        _redirect_uri,
        "an https:// URL or http://127.0.0.1:PORT/... (Spotify refuses `localhost`)",
    )
    if r.raw("SPOTIFY_REDIRECT_URI") is None and public_base:
        # A derived URI must satisfy Spotify's rule too; name the key the operator can change.
        try:
            _redirect_uri(redirect)
        except ValueError:
            r.problems.append(
                f"PUBLIC_BASE_URL={public_base!r} gives the redirect URI {redirect!r}, which "
                "Spotify refuses: use https://, or http://127.0.0.1:PORT, "
                "or set SPOTIFY_REDIRECT_URI"
            )

    settings = Settings(
        discord_token=discord_token,
        spotify_client_id=client_id,
        spotify_client_secret=client_secret,
        token_encryption_key=key,
        public_base_url=public_base,
        spotify_redirect_uri=redirect,
        http_host=r.raw("HTTP_HOST") or "127.0.0.1",
        http_port=http_port,
        storage_url=r.parsed(
            "STORAGE_URL",
            DEFAULT_STORAGE_URL,
            _storage_url,
            "sqlite:///path or redis://host:port/db",
            secret=True,  # a Redis URL may carry its password
        ),
        cors_origins=r.parsed("CORS_ORIGINS", ("*",), _origins, "* or comma-separated origins"),
        log_level=r.parsed("LOG_LEVEL", "INFO", _log_level, "one of " + ", ".join(LOG_LEVELS)),
        discord_api_base=r.parsed(
            "DISCORD_API_BASE", "https://discord.com/api/v10", _http_url, "an http(s):// URL"
        ),
        discord_gateway_url=r.parsed("DISCORD_GATEWAY_URL", None, _ws_url, "a ws(s):// URL"),
        discord_dev_guild_id=r.parsed("DISCORD_DEV_GUILD_ID", None, _positive_int, "a guild id"),
        spotify_api_base=r.parsed(
            "SPOTIFY_API_BASE", "https://api.spotify.com", _http_url, "an http(s):// URL"
        ),
        spotify_accounts_base=r.parsed(
            "SPOTIFY_ACCOUNTS_BASE", "https://accounts.spotify.com", _http_url, "an http(s):// URL"
        ),
        stream_cache_max_entries=r.parsed(
            "STREAM_CACHE_MAX_ENTRIES", 10_000, _positive_int, "a positive whole number"
        ),
        resolver_workers=r.parsed(
            "RESOLVER_WORKERS", 4, _positive_int, "a positive whole number of threads"
        ),
        youtube_base_url=r.parsed("YOUTUBE_BASE_URL", None, _http_url, "an http(s):// URL"),
        sync_poll_interval_s=r.parsed(
            "SYNC_POLL_INTERVAL", 1.0, _positive_float, "seconds between host polls, e.g. 1"
        ),
        sync_drift_threshold_ms=r.parsed(
            "SYNC_DRIFT_THRESHOLD_MS", 1500, _positive_int, "milliseconds, e.g. 1500"
        ),
        host_idle_timeout_s=r.parsed(
            "HOST_IDLE_TIMEOUT", 1800.0, _non_negative_float, "seconds (0 never ends a session)"
        ),
        http_rate_per_s=r.parsed(
            "HTTP_RATE_PER_S", 2.0, _positive_float, "requests per second per client (e.g. 2)"
        ),
        http_rate_burst=r.parsed(
            "HTTP_RATE_BURST", 60, _positive_int, "a positive whole number of requests"
        ),
        spotify_workers=r.parsed(
            "SPOTIFY_WORKERS", 32, _positive_int, "a positive whole number of threads"
        ),
        sync_drift_check_interval_s=r.parsed(
            "SYNC_DRIFT_CHECK_INTERVAL", 15.0, _positive_float, "seconds between listener reads"
        ),
        spotify_rate_limit=r.parsed(
            "SPOTIFY_RATE_LIMIT", 150, _positive_int, "Web API calls per 30 s, e.g. 150"
        ),
        voice_auto_join=r.parsed("VOICE_AUTO_JOIN", False, _bool, "true or false"),
        voice_empty_timeout_s=r.parsed(
            "VOICE_EMPTY_TIMEOUT", 60.0, _non_negative_float, "seconds, e.g. 60"
        ),
    )
    if r.problems:
        raise SettingsError(r.problems)
    return settings


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", force=True
    )

"""Settings: the one place that reads the environment.

`load_settings()` reads `.env` (python-dotenv; real environment variables win), validates every
key and returns a frozen `Settings`. All problems are collected and reported together, so an
operator fixes a broken configuration in one pass instead of one restart per missing key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from bot.settings_parse import (
    LOG_LEVELS,
    _bool,
    _extractor_args,
    _fernet_keys,
    _http_url,
    _ip_address,
    _log_level,
    _networks,
    _non_negative_float,
    _origins,
    _port,
    _positive_float,
    _positive_int,
    _proxy_url,
    _readable_file,
    _Reader,
    _redirect_uri,
    _relay_secret,
    _shard_ids,
    _storage_url,
    _ws_url,
)
from storage.crypto import TokenCipher

DEFAULT_STORAGE_URL = "sqlite:///data/gamenight.db"
# The keys without a default. The bot needs only DISCORD_TOKEN: without the Spotify app keys it
# follows hosts through their Discord presence (voice, listen page) and /link says what is
# missing. TOKEN_ENCRYPTION_KEY may stay empty: bot/keyfile.py then keeps a generated key in the
# data folder. The indexer talks to Spotify, never to Discord.
BOT_KEYS = frozenset({"DISCORD_TOKEN"})
SPOTIFY_APP_KEYS = frozenset({"SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"})
INDEXER_KEYS = SPOTIFY_APP_KEYS
# `python -m bot web` needs none: no gateway, and without the Spotify app it serves what needs
# no lookup (cached songs, the relay, listen pages) and says plainly what does.
WEB_KEYS: frozenset[str] = frozenset()


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
    spotify_daily_budget: int = 1200  # calls per rolling 24 h for the developer account
    # Sharding (#15): None runs one unsharded gateway session. With several processes on one
    # Redis, each runs some shard ids of the same shard count (shard_ids None: all of them).
    discord_shard_count: int | None = None
    discord_shard_ids: tuple[int, ...] | None = None
    # (hostile, #13) the HTTP server's limits against slow or hostile clients (bot.web.server)
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 20.0
    http_keepalive_timeout_s: float = 75.0
    http_max_connections_per_client: int = 64
    # Reverse proxies (addresses/CIDRs) whose X-Forwarded-For names the client (bot/web/proxies.py).
    http_trusted_proxies: tuple[str, ...] = ()
    # The Discord application's OAuth2 client secret: set, the link confirmation page asks
    # Discord who the browser's user is and refuses a link completed by someone else.
    discord_client_secret: str | None = field(default=None, repr=False)
    # --- streams (#11): YouTube from a server, the audio relay, trusted metadata ---
    youtube_cookies_file: str | None = None  # cookies.txt for yt-dlp (bot checks)
    youtube_proxy: str | None = field(default=None, repr=False)  # may carry a password
    youtube_source_address: str | None = None  # local IP yt-dlp and the relay connect from
    youtube_extractor_args: str | None = None  # yt-dlp --extractor-args syntax
    youtube_pot_provider_url: str | None = None  # bgutil PO-token provider server
    relay_secret: str | None = field(default=None, repr=False)  # else derived from the token key
    relay_url_ttl_s: float = 6 * 3600.0  # how long a relay URL from POST /song plays
    song_raw_urls: bool = False  # POST /song answers YouTube's URL itself (same network only)
    force_cooldown_s: float = 600.0  # a track is re-matched on request at most this often
    instance_id: str | None = None  # sync lease holder name; None: kept in the data folder
    sync_lease_ttl_s: float = 1.5  # a dead process's guilds move to another within about this
    discord_presence_intent: bool = True  # ask for presences + members (branch presence)
    voice_auto_join: bool = False  # join the host's voice channel when a session starts
    voice_empty_timeout_s: float = 60.0  # leave voice after it has been empty this long

    @property
    def spotify_app(self) -> bool:
        """Spotify app keys set: linking and Spotify-account sync are available."""
        return bool(self.spotify_client_id and self.spotify_client_secret)

    def cipher(self) -> TokenCipher:
        return TokenCipher.from_keys(self.token_encryption_key)


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
        "encrypts Spotify tokens at rest; make one with `make key`",
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
        spotify_daily_budget=r.parsed(
            "SPOTIFY_DAILY_BUDGET", 1200, _positive_int, "Spotify calls per 24 h, e.g. 1200"
        ),
        discord_shard_count=r.parsed(
            "DISCORD_SHARD_COUNT", None, _positive_int, "the total number of shards, e.g. 2"
        ),
        discord_shard_ids=r.parsed(
            "DISCORD_SHARD_IDS", None, _shard_ids, "comma-separated shard ids, e.g. 0 or 0,1"
        ),
        http_header_timeout_s=r.parsed(
            "HTTP_HEADER_TIMEOUT", 10.0, _positive_float, "seconds to send request headers"
        ),
        http_body_timeout_s=r.parsed(
            "HTTP_BODY_TIMEOUT", 20.0, _positive_float, "seconds to send a request body"
        ),
        http_keepalive_timeout_s=r.parsed(
            "HTTP_KEEPALIVE_TIMEOUT", 75.0, _positive_float, "idle seconds before closing"
        ),
        http_max_connections_per_client=r.parsed(
            "HTTP_MAX_CONNECTIONS_PER_CLIENT", 64, _positive_int, "a positive whole number"
        ),
        http_trusted_proxies=r.parsed(
            "HTTP_TRUSTED_PROXIES", (), _networks, "comma-separated IP addresses or CIDRs"
        ),
        discord_client_secret=r.raw("DISCORD_CLIENT_SECRET"),
        youtube_cookies_file=r.parsed(
            "YOUTUBE_COOKIES_FILE", None, _readable_file, "the path of an existing cookies.txt"
        ),
        youtube_proxy=r.parsed(
            "YOUTUBE_PROXY",
            None,
            _proxy_url,
            "a proxy URL: http://, https:// or socks5://host:port",
            secret=True,
        ),
        youtube_source_address=r.parsed(
            "YOUTUBE_SOURCE_ADDRESS", None, _ip_address, "an IP address of this host"
        ),
        youtube_extractor_args=r.parsed(
            "YOUTUBE_EXTRACTOR_ARGS",
            None,
            _extractor_args,
            "yt-dlp's --extractor-args form, e.g. youtube:player_client=default,mweb",
        ),
        youtube_pot_provider_url=r.parsed(
            "YOUTUBE_POT_PROVIDER_URL", None, _http_url, "an http(s):// URL"
        ),
        relay_secret=r.parsed(
            "RELAY_SECRET", None, _relay_secret, "at least 16 characters", secret=True
        ),
        relay_url_ttl_s=r.parsed(
            "RELAY_URL_TTL", 6 * 3600.0, _positive_float, "seconds a relay URL plays, e.g. 21600"
        ),
        song_raw_urls=r.parsed("SONG_RAW_URLS", False, _bool, "true or false"),
        force_cooldown_s=r.parsed(
            "FORCE_COOLDOWN", 600.0, _non_negative_float, "seconds between forced re-matches"
        ),
        instance_id=r.raw("INSTANCE_ID"),
        sync_lease_ttl_s=r.parsed(
            "SYNC_LEASE_TTL", 1.5, _positive_float, "seconds a sync lease lasts unrenewed, e.g. 1.5"
        ),
        discord_presence_intent=r.parsed("DISCORD_PRESENCE_INTENT", True, _bool, "true or false"),
        voice_auto_join=r.parsed("VOICE_AUTO_JOIN", False, _bool, "true or false"),
        voice_empty_timeout_s=r.parsed(
            "VOICE_EMPTY_TIMEOUT", 60.0, _non_negative_float, "seconds, e.g. 60"
        ),
    )
    _check_shards(settings, r.problems)
    if r.problems:
        raise SettingsError(r.problems)
    return settings


def _check_shards(settings: Settings, problems: list[str]) -> None:
    ids, count = settings.discord_shard_ids, settings.discord_shard_count
    if ids is None:
        return
    if count is None:
        problems.append("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total number of shards)")
    elif ids[-1] >= count:
        problems.append(
            f"DISCORD_SHARD_IDS={','.join(map(str, ids))} is not valid: "
            f"shard ids run from 0 to {count - 1} with DISCORD_SHARD_COUNT={count}"
        )


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", force=True
    )

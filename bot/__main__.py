"""Composition root: `python -m bot` (what `make run` starts).

Loads the settings, then opens every resource with an AsyncExitStack — the HTTP session,
storage, the Spotify layer, the stream resolver, the listen-along feeds, the embedded aiohttp
server (AppRunner + TCPSite on this loop, no thread) and the discord.py client — builds one
frozen `Services`, and runs until SIGINT or SIGTERM. Shutdown unwinds in reverse order: the bot,
then the HTTP server (requests in flight finish while the resolver still runs), the listen
feeds, the resolver (it writes its pending access times), then Spotify and storage.

`python -m bot web` runs the same minus the discord.py client and the sync engine: the HTTP API,
relay, resolver and listen pages only, for more replicas of the PWA API on one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot import cli
from bot.audience import start_audience_watch
from bot.client import GameNightBot, make_bot, point_discord_at
from bot.dblock import lock_sqlite
from bot.discord_lookup import DiscordDirectory, bounded_who
from bot.keyfile import KeyFileError, with_stored_key
from bot.names import MemberNames
from bot.services import Services, audio_route, open_resources, relay_config, shared_linker
from bot.settings import (
    WEB_KEYS,
    Settings,
    SettingsError,
    configure_logging,
    load_settings,
)
from bot.startup import (
    StartupError,
    check_spotify_settings,
    quiet_discord_logs,
    start_announcer,
    start_failure,
)
from bot.sync import start_sync
from bot.voice import VoiceConfig
from bot.voice_relay import start_voice_relay
from bot.web import RateLimit, create_app
from bot.web.discord_oauth import CALLBACK_PATH as DISCORD_CALLBACK
from bot.web.discord_oauth import DiscordOAuth
from bot.web.favicon import add_favicon
from bot.web.linking import Person, WhoIs, add_link_routes
from bot.web.listen import ListenLinks, add_listen_routes
from bot.web.proxies import TrustedProxies
from bot.web.quota_metrics import register_quota_metrics
from bot.web.server import ServerLimits, start_http
from bot.web.services import METRICS, SYNC_HEALTH
from core.audience import AudiencePublisher
from core.host_presence import HostPresence, PresenceTracks
from core.linking import LinkOutcome
from core.listen import ListenAlong
from core.presence import PresenceBoard
from core.sessions import SessionService
from storage.errors import StorageError
from storage.records import HostSnapshot

log = logging.getLogger("bot")

# spotDL and yt-dlp do CPU work (HTML parsing, ranking) in the resolver's worker threads. With
# CPython's default 5 ms switch interval such a thread keeps the GIL for up to 5 ms each time
# the loop wants it back; at 1 ms the loop's lag while resolving fell from p99 45 ms to 17 ms
# (tests/bench/loop_lag.py). It only matters while another thread wants the GIL, which cache
# hits never do (tests/bench/http_song.py measures with it).
SWITCH_INTERVAL_S = 0.001


@dataclass(frozen=True)
class Running:
    """A started Game Night: what tests and the signal handler need to reach."""

    services: Services
    bot: GameNightBot | None  # None (and no bot_task) in the web-only role
    bot_task: asyncio.Task[None] | None
    web_runner: web.AppRunner


def web_app(
    settings: Settings,
    services: Services,
    bot: GameNightBot | None,
    directory: DiscordDirectory | None = None,
) -> web.Application:
    """The HTTP app: the PWA and v1 API, health and metrics, and the Spotify callback.

    Without a bot (web-only), the confirmation page asks Discord through `directory`; no DM.
    """
    app = create_app(
        storage=services.storage,
        resolver=services.resolver,
        cors_origins=settings.cors_origins,
        rate_limit=RateLimit(settings.http_rate_per_s, settings.http_rate_burst),
        trusted_proxies=TrustedProxies(settings.http_trusted_proxies),
        body_timeout_s=settings.http_body_timeout_s,
        relay=relay_config(settings),
    )

    async def confirm_in_discord(outcome: LinkOutcome) -> None:
        if bot is not None and outcome.discord_user_id is not None:
            await bot.dm(
                outcome.discord_user_id,
                f"✅ Spotify account “{outcome.display_name}” linked. "
                "Join a game night with /gamenight join.",
            )

    app[SYNC_HEALTH] = services.sync_health
    register_quota_metrics(app[METRICS], services.spotify.quota.status)
    who, discord_oauth = _link_identity(settings, bot, directory)
    add_link_routes(
        app, services.linker, notify=confirm_in_discord, who=who, discord_oauth=discord_oauth
    )
    add_listen_routes(app, services.listen.listen, names=_names(bot))
    add_favicon(app)
    return app


def _names(bot: GameNightBot | None) -> Callable[[int, int], str | None]:
    return MemberNames(bot) if bot is not None else lambda guild_id, user_id: None


def _link_identity(
    settings: Settings, bot: GameNightBot | None, directory: DiscordDirectory | None
) -> tuple[WhoIs | None, DiscordOAuth | None]:
    """Who the link confirmation page names, and Discord's proof of it when configured.

    With a bot: its cache, then its REST call. Web-only: `directory` (REST with the bot
    token), or nothing when DISCORD_TOKEN is not set (then the state alone protects the link).
    """
    client_id: Callable[[], int | None]
    if bot is not None:

        async def fetch(user_id: int) -> Person:
            user = bot.get_user(user_id) or await bot.fetch_user(user_id)
            return Person(f"{user.display_name} (@{user.name})", user.display_avatar.url)

        who, client_id = bounded_who(fetch), lambda: bot.application_id
    elif directory is not None:
        who, client_id = bounded_who(directory.person), directory.application_id
    else:
        if settings.discord_client_secret:
            log.warning(
                "DISCORD_CLIENT_SECRET is set but DISCORD_TOKEN is not: this web process "
                "cannot ask Discord who confirms a link (set DISCORD_TOKEN here too)"
            )
        return None, None

    discord_oauth = None
    if settings.discord_client_secret:
        discord_oauth = DiscordOAuth(
            client_id=client_id,
            client_secret=settings.discord_client_secret,
            api_base=settings.discord_api_base,
            redirect_uri=settings.public_base_url.rstrip("/") + DISCORD_CALLBACK,
        )
    return who, discord_oauth


def server_limits(settings: Settings) -> ServerLimits:
    return ServerLimits(
        header_timeout_s=settings.http_header_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
        keepalive_timeout_s=settings.http_keepalive_timeout_s,
        max_connections_per_client=settings.http_max_connections_per_client,
        trusted_proxies=settings.http_trusted_proxies,
    )


def follow_presence(services: Services, bot: GameNightBot, tracks: PresenceTracks) -> None:
    """No Spotify app, no sync engine: hosts' presences become the sessions' snapshots."""

    async def show(guild_id: int, snapshot: HostSnapshot) -> None:
        if bot.board is None or snapshot.track_id is None:
            return
        try:
            track = await tracks.track(snapshot.track_id)
        except LookupError:
            return
        await bot.board.show_playback(guild_id, track, snapshot.is_playing)

    services.sessions.subscribe(HostPresence(services.presence, services.storage, show))


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    client_options: Mapping[str, Any] | None = None,
    ytmusic_client_factory: Callable[[], Any] | None = None,
    gateway: bool = True,
) -> AsyncIterator[Running]:
    """Open everything, start the bot, and close it all again on exit.

    `client_options` go to the discord.py client; `ytmusic_client_factory` replaces spotDL's
    YouTube Music client (tests and the sandbox: the fake YouTube's `ytmusic_client`).
    `gateway=False` is the web-only role: no discord.py client, no sync engine.
    """
    point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
    async with AsyncExitStack() as stack:
        if gateway and (held := lock_sqlite(settings.storage_url)) is not None:
            stack.callback(held.close)  # one bot per SQLite file (bot/dblock.py)
        res = await open_resources(
            stack,
            settings,
            resolver_workers=settings.resolver_workers,
            ytmusic_client_factory=ytmusic_client_factory,
        )
        http, store, spotify, resolver = res.http, res.storage, res.spotify, res.resolver
        await check_spotify_settings(settings, spotify, bot=gateway)
        await resolver.start()
        presence = PresenceBoard()
        # Track titles from hosts' presences first: the only source without a Spotify app.
        tracks = PresenceTracks(presence, spotify if settings.spotify_app else None)
        listen = ListenAlong(store, resolver, tracks, presence=presence)
        audience = AudiencePublisher(store)  # the status messages may be posted elsewhere
        listen.watch_audience(audience.changed)
        stack.push_async_callback(audience.aclose)  # after listen.aclose: its last counts
        stack.push_async_callback(listen.aclose)
        services = Services(
            http=http,
            storage=store,
            spotify=spotify,
            linker=shared_linker(store, spotify),
            sessions=SessionService(store, store, spotify_accounts=settings.spotify_app),
            resolver=resolver,
            listen=ListenLinks(listen, settings.public_base_url),
            presence=presence,
            # Closed after the bot (entered later): its voice players read from it to the end.
            voice_relay=await start_voice_relay(stack, store, resolver, audio_route(settings))
            if gateway
            else None,
        )
        quiet_discord_logs(voice_enabled=gateway)
        bot = (
            make_bot(
                services,
                dev_guild_id=settings.discord_dev_guild_id,
                shard_count=settings.discord_shard_count,
                shard_ids=settings.discord_shard_ids,
                presence_intent=settings.discord_presence_intent,
                voice=VoiceConfig(
                    auto_join=settings.voice_auto_join,
                    empty_timeout_s=settings.voice_empty_timeout_s,
                ),
                **(client_options or {}),
            )
            if gateway
            else None
        )
        directory = None
        if bot is None and settings.discord_token:
            # Web-only with a bot token: name the person and know the application id by REST.
            directory = DiscordDirectory(http, settings.discord_api_base, settings.discord_token)
            stack.push_async_callback(directory.aclose)
            await directory.load_application_id()
        runner = await start_http(
            web_app(settings, services, bot, directory),
            settings.http_host,
            settings.http_port,
            server_limits(settings),
        )
        stack.push_async_callback(runner.cleanup)
        log.info("HTTP server on http://%s:%s", settings.http_host, settings.http_port)
        if bot is None:
            yield Running(services, None, None, runner)
            return

        await stack.enter_async_context(bot)
        sync = None
        if settings.spotify_app:
            sync = await start_sync(settings, services, bot)  # loops start from session hooks
        else:
            follow_presence(services, bot, tracks)
        bot_task = asyncio.create_task(bot.start(settings.discord_token), name="discord")
        announcer = start_announcer(bot, settings.discord_dev_guild_id)
        stack.callback(announcer.cancel)

        async def stop_bot() -> None:
            await bot.close()
            if not bot_task.done():  # a task that already ended was reported by serve()
                with contextlib.suppress(asyncio.CancelledError):
                    await bot_task

        stack.push_async_callback(stop_bot)
        if sync is not None:
            stack.push_async_callback(sync.aclose)  # first out: its last reports reach a live bot
        stack.push_async_callback(start_audience_watch(bot, sync, store).aclose)
        yield Running(services, bot, bot_task, runner)


async def serve(settings: Settings, *, web_only: bool = False) -> int:
    """Run until SIGINT/SIGTERM (0) or until the Discord connection fails for good (1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings, gateway=not web_only) as app:
        stopping = asyncio.create_task(stop.wait())
        waiting = {stopping} if app.bot_task is None else {stopping, app.bot_task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if app.bot_task is not None and app.bot_task.done() and not app.bot_task.cancelled():
            error = app.bot_task.exception()
            intents = app.bot.intents if app.bot is not None else None
            failure = None if error is None else start_failure(error, settings, intents)
            if failure is not None:
                log.error("%s", failure)
                return 1
            if error is not None:
                log.error("the Discord connection failed", exc_info=error)
                return 1
        log.info("shutting down")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    status = cli.run_subcommand(argv)
    if status is not None:
        return status
    web_only = argv == ["web"]  # no gateway, so no DISCORD_TOKEN needed
    try:
        settings = load_settings(required=WEB_KEYS) if web_only else load_settings()
    except SettingsError as err:
        print(err.report(), file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        settings = with_stored_key(settings)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        return asyncio.run(serve(settings, web_only=web_only))
    # OSError: e.g. the HTTP port is taken. Exit 2: the settings or this machine; 1: a service.
    except (KeyFileError, StorageError, OSError, StartupError) as err:
        print(f"Game Night cannot start: {err}", file=sys.stderr)
        return 1 if isinstance(err, StartupError) else 2


if __name__ == "__main__":
    sys.exit(main())

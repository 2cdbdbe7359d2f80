"""Composition root: `python -m bot` (what `make run` starts).

Loads the settings, then opens every resource with an AsyncExitStack — the HTTP session,
storage, the Spotify layer, the stream resolver, the listen-along feeds, the embedded aiohttp
server (AppRunner + TCPSite on this loop, no thread) and the discord.py client — builds one
frozen `Services`, and runs until SIGINT or SIGTERM. Shutdown unwinds in reverse order: the bot,
then the HTTP server (requests in flight finish while the resolver still runs), the listen
feeds, the resolver (it writes its pending access times), then Spotify and storage.
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

import discord
from aiohttp import web

from bot import index_cli
from bot.client import GameNightBot, point_discord_at
from bot.services import Services, open_resources
from bot.settings import Settings, SettingsError, configure_logging, load_settings
from bot.sync import start_sync
from bot.voice import VoiceConfig
from bot.web import RateLimit, create_app
from bot.web.linking import add_link_routes
from bot.web.listen import ListenLinks, add_listen_routes
from core.host_presence import HostPresence, PresenceTracks
from core.linking import Linker, LinkOutcome
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
    bot: GameNightBot
    bot_task: asyncio.Task[None]
    web_runner: web.AppRunner


def web_app(settings: Settings, services: Services, bot: GameNightBot) -> web.Application:
    """The HTTP app: the PWA and v1 API, health and metrics, and the Spotify callback."""
    app = create_app(
        storage=services.storage,
        resolver=services.resolver,
        cors_origins=settings.cors_origins,
        rate_limit=RateLimit(settings.http_rate_per_s, settings.http_rate_burst),
    )

    async def confirm_in_discord(outcome: LinkOutcome) -> None:
        if outcome.discord_user_id is not None:
            await bot.dm(
                outcome.discord_user_id,
                f"✅ Spotify account “{outcome.display_name}” linked. "
                "Join a game night with /gamenight join.",
            )

    add_link_routes(app, services.linker, notify=confirm_in_discord)
    add_listen_routes(app, services.listen.listen, names=bot.display_name)
    return app


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
) -> AsyncIterator[Running]:
    """Open everything, start the bot, and close it all again on exit.

    `client_options` go to the discord.py client; `ytmusic_client_factory` replaces spotDL's
    YouTube Music client (tests and the sandbox: the fake YouTube's `ytmusic_client`).
    """
    point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
    async with AsyncExitStack() as stack:
        res = await open_resources(
            stack,
            settings,
            resolver_workers=settings.resolver_workers,
            ytmusic_client_factory=ytmusic_client_factory,
        )
        http, store, spotify, resolver = res.http, res.storage, res.spotify, res.resolver
        await resolver.start()
        presence = PresenceBoard()
        # Track titles from hosts' presences first: the only source without a Spotify app.
        tracks = PresenceTracks(presence, spotify if settings.spotify_app else None)
        listen = ListenAlong(store, resolver, tracks)
        stack.push_async_callback(listen.aclose)
        services = Services(
            http=http,
            storage=store,
            spotify=spotify,
            linker=Linker(store, store, spotify),
            sessions=SessionService(store, store, spotify_accounts=settings.spotify_app),
            resolver=resolver,
            listen=ListenLinks(listen, settings.public_base_url),
            presence=presence,
        )
        bot = GameNightBot(
            services,
            dev_guild_id=settings.discord_dev_guild_id,
            voice=VoiceConfig(
                auto_join=settings.voice_auto_join, empty_timeout_s=settings.voice_empty_timeout_s
            ),
            **(client_options or {}),
        )
        runner = web.AppRunner(web_app(settings, services, bot), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        log.info("HTTP server on http://%s:%s", settings.http_host, settings.http_port)

        await stack.enter_async_context(bot)
        if settings.spotify_app:
            sync = await start_sync(settings, services, bot)  # loops start from session hooks
        else:
            follow_presence(services, bot, tracks)
        bot_task = asyncio.create_task(bot.start(settings.discord_token), name="discord")

        async def stop_bot() -> None:
            await bot.close()
            if not bot_task.done():  # a task that already ended was reported by serve()
                with contextlib.suppress(asyncio.CancelledError):
                    await bot_task

        stack.push_async_callback(stop_bot)
        if settings.spotify_app:
            stack.push_async_callback(sync.aclose)
        yield Running(services, bot, bot_task, runner)


async def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM (0) or until the Discord connection fails for good (1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as app:
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({stopping, app.bot_task}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if app.bot_task.done() and not app.bot_task.cancelled():
            error = app.bot_task.exception()
            if isinstance(error, discord.LoginFailure):
                log.error("Discord refused the bot token: check DISCORD_TOKEN")
                return 1
            if isinstance(error, discord.PrivilegedIntentsRequired):
                log.error(
                    "Discord refused the Presence Intent (voice follows the host's Spotify "
                    "presence): switch it on in the developer portal, Bot -> Privileged "
                    "Gateway Intents"
                )
                return 1
            if error is not None:
                log.error("the Discord connection failed", exc_info=error)
                return 1
        log.info("shutting down")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["index"]:
        return index_cli.main(argv[1:])
    try:
        settings = load_settings()
    except SettingsError as err:
        print(err.report(), file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        return asyncio.run(serve(settings))
    except (StorageError, OSError) as err:  # OSError: e.g. the HTTP port is taken
        print(f"Game Night cannot start: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

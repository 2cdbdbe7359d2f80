"""The services the composition root builds once and hands to the bot, cogs and web routes."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp

import storage
from bot.settings import Settings
from bot.voice_relay import VoiceRelay
from bot.web.listen import ListenLinks
from bot.web.services import AudioRoute, RelayConfig
from bot.web.signing import RelaySigner, derive_secret
from core.errors import NoSpotifyApp
from core.linking import Linker
from core.presence import PresenceBoard
from core.resolver import Resolver, ResolverConfig, TrackLookup
from core.resolver_factory import build_resolver
from core.sessions import SessionService
from core.spotify import CallPriority, SpotifyClient, SpotifyConfig, StoreLocks
from core.sync.health import SyncHealth
from core.tracks import TrackInfo
from core.youtube import YouTubeConfig
from core.ytargs import parse_extractor_args
from storage.base import Storage


@dataclass(frozen=True)
class Services:
    http: aiohttp.ClientSession
    storage: Storage
    spotify: SpotifyClient
    linker: Linker
    sessions: SessionService
    resolver: Resolver
    listen: ListenLinks  # the browser listen-along page
    sync_health: SyncHealth = field(default_factory=SyncHealth)  # read by /healthcheck
    presence: PresenceBoard = field(default_factory=PresenceBoard)  # members' Spotify presence
    voice_relay: VoiceRelay | None = None  # where voice reads audio (None: the web-only role)


def spotify_config(settings: Settings) -> SpotifyConfig:
    """The Spotify client layer's configuration, for the bot and the indexer alike."""
    return SpotifyConfig(
        client_id=settings.spotify_client_id,
        client_secret=settings.spotify_client_secret,
        redirect_uri=settings.spotify_redirect_uri,
        api_base=settings.spotify_api_base,
        accounts_base=settings.spotify_accounts_base,
        max_workers=settings.spotify_workers,
        rate_limit=settings.spotify_rate_limit,
        daily_budget=settings.spotify_daily_budget,
    )


def youtube_config(settings: Settings) -> YouTubeConfig:
    """How yt-dlp reaches YouTube (cookies, proxy, source address, extractor args, PO tokens)."""
    args = settings.youtube_extractor_args
    return YouTubeConfig(
        base_url=settings.youtube_base_url,
        cookies_file=settings.youtube_cookies_file,
        proxy=settings.youtube_proxy,
        source_address=settings.youtube_source_address,
        extractor_args=parse_extractor_args(args) if args else {},
        pot_provider_url=settings.youtube_pot_provider_url,
    )


def audio_route(settings: Settings) -> AudioRoute:
    """How our relays reach YouTube: the way yt-dlp does (stream URLs are bound to it)."""
    return AudioRoute(settings.youtube_proxy, settings.youtube_source_address)


def relay_config(settings: Settings) -> RelayConfig:
    """Relay URL signing, and the relay's route to YouTube (the same as yt-dlp's)."""
    secret = (
        settings.relay_secret.encode()
        if settings.relay_secret
        else derive_secret(settings.token_encryption_key)
    )
    return RelayConfig(
        signer=RelaySigner(secret, settings.public_base_url, ttl_s=settings.relay_url_ttl_s),
        raw_song_urls=settings.song_raw_urls,
        route=audio_route(settings),
    )


def track_lookup(spotify: SpotifyClient, *, spotify_app: bool = True) -> TrackLookup:
    """The resolver's metadata lookup: any client can trigger one (a new id), so it runs at the
    lowest priority; the budget's reserve keeps a host's player reads (COMMAND) admitted, and
    a refused lookup makes `/song` match the client's claim instead.

    Without the Spotify app keys every lookup is refused at once, with nothing sent: `/song`
    then matches the client's claim, and a bare id that is not cached gets a plain 503.
    """
    if not spotify_app:
        return _no_lookup
    return partial(spotify.track, priority=CallPriority.BACKGROUND)


async def _no_lookup(track_id: str) -> TrackInfo:
    raise NoSpotifyApp()


def shared_spotify(
    config: SpotifyConfig,
    store: Storage,
    http: aiohttp.ClientSession,
    *,
    clock: Callable[[], float] = time.time,
) -> SpotifyClient:
    """A SpotifyClient whose budget lives in `store`: the backend counts every call and keeps
    the holds and the refresh lock, so the budget survives a restart and every process sharing
    the storage (shards, web replicas, the indexer) spends one budget."""
    return SpotifyClient(config, store, http, counters=store, locks=StoreLocks(store), clock=clock)


def shared_linker(store: Storage, spotify: SpotifyClient) -> Linker:
    """Links, OAuth states and pending confirmations all in `store`, so a link begun in one
    process may be confirmed in another (web replicas)."""
    return Linker(store, store, spotify, pending=store)


@dataclass(frozen=True)
class Streams:
    """How the resolver finds and extracts audio (the production values come from Settings)."""

    youtube: YouTubeConfig
    resolver: ResolverConfig = field(default_factory=ResolverConfig)
    ytmusic_client_factory: Callable[[], Any] | None = None  # None: the real YouTube Music


async def open_spotify_and_resolver(
    stack: AsyncExitStack,
    store: Storage,
    http: aiohttp.ClientSession,
    spotify: SpotifyConfig,
    streams: Streams,
    *,
    spotify_app: bool = True,
) -> tuple[SpotifyClient, Resolver]:
    """The Spotify client and the stream resolver over one storage; `stack` closes them.

    The resolver is built but not started: the bot starts it (warm-up, refresher), a one-off
    indexer run needs neither. Its aclose is registered first, so a start that fails half-way
    still shuts its pool down.
    """
    client = shared_spotify(spotify, store, http)
    stack.push_async_callback(client.aclose)
    resolver = build_resolver(
        store,
        track_lookup(client, spotify_app=spotify_app),
        config=streams.resolver,
        youtube_config=streams.youtube,
        ytmusic_client_factory=streams.ytmusic_client_factory,
        leases=store,  # one refresher pass at a time across the processes on this storage
    )
    stack.push_async_callback(resolver.aclose)
    return client, resolver


@dataclass(frozen=True)
class Resources:
    """What the bot and the indexer both open: HTTP session, storage, Spotify, resolver."""

    http: aiohttp.ClientSession
    storage: Storage
    spotify: SpotifyClient
    resolver: Resolver


async def open_resources(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    resolver_workers: int,
    ytmusic_client_factory: Callable[[], Any] | None = None,
) -> Resources:
    """Open the shared resources from the settings; `stack` closes them in reverse order."""
    http = await stack.enter_async_context(aiohttp.ClientSession())
    store = await storage.open_storage(
        settings.storage_url, settings.cipher(), max_streams=settings.stream_cache_max_entries
    )
    stack.push_async_callback(store.aclose)
    streams = Streams(
        youtube_config(settings),
        ResolverConfig(workers=resolver_workers, force_cooldown_s=settings.force_cooldown_s),
        ytmusic_client_factory,
    )
    spotify, resolver = await open_spotify_and_resolver(
        stack, store, http, spotify_config(settings), streams, spotify_app=settings.spotify_app
    )
    return Resources(http, store, spotify, resolver)

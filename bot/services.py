"""The services the composition root builds once and hands to the bot, cogs and web routes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp

import storage
from bot.settings import Settings
from bot.web.listen import ListenLinks
from core.linking import Linker
from core.presence import PresenceBoard
from core.resolver import Resolver, ResolverConfig, build_resolver
from core.sessions import SessionService
from core.spotify import SpotifyClient, SpotifyConfig
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
    presence: PresenceBoard = field(default_factory=PresenceBoard)  # members' Spotify presence


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
    )


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
    """Open the shared resources; `stack` closes them in reverse order.

    The resolver is built but not started: the bot starts it (warm-up, refresher), a one-off
    indexer run needs neither. Its aclose is registered first, so a start that fails half-way
    still shuts its pool down.
    """
    http = await stack.enter_async_context(aiohttp.ClientSession())
    store = await storage.open_storage(
        settings.storage_url, settings.cipher(), max_streams=settings.stream_cache_max_entries
    )
    stack.push_async_callback(store.aclose)
    spotify = SpotifyClient(spotify_config(settings), store, http)
    stack.push_async_callback(spotify.aclose)
    resolver = build_resolver(
        store,
        spotify.track,
        config=ResolverConfig(workers=resolver_workers),
        youtube_base_url=settings.youtube_base_url,
        ytmusic_client_factory=ytmusic_client_factory,
    )
    stack.push_async_callback(resolver.aclose)
    return Resources(http, store, spotify, resolver)

"""The services the composition root builds once and hands to the bot, cogs and web routes."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bot.settings import Settings
from bot.web.listen import ListenLinks
from core.linking import Linker
from core.resolver import Resolver
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
    listen: ListenLinks | None = None  # the browser listen-along page, when it is served


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

"""The services the composition root builds once and hands to the bot, cogs and web routes."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bot.web.listen import ListenLinks
from core.linking import Linker
from core.resolver import Resolver
from core.sessions import SessionService
from core.spotify import SpotifyClient
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

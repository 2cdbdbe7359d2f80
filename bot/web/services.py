"""What the HTTP routes need from the rest of the program, and where the app keeps it.

The routes depend on these small Protocols, not on concrete classes, so the app can be built
from whatever the composition root wires in (the real Resolver and storage backend in
production and in tests).
"""

from __future__ import annotations

from typing import Protocol

import aiohttp
from aiohttp import web

from bot.web.metrics import WebMetrics
from bot.web.ratelimit import RateLimiter
from core.resolver import ResolverStats
from core.sync.health import SyncHealth
from core.tracks import TrackInfo
from storage.records import CachedStream


class StreamResolver(Protocol):
    """Turns a Spotify track into a playable stream URL (core.resolver.Resolver)."""

    async def resolve(self, track: TrackInfo, force: bool = False) -> CachedStream: ...
    async def resolve_id(self, spotify_id: str, force: bool = False) -> CachedStream: ...

    @property
    def stats(self) -> ResolverStats:
        """A snapshot of the counters, read by /metrics."""
        ...


class HealthProbe(Protocol):
    """Anything that can say whether it answers; the storage backend in practice."""

    async def ping(self) -> None: ...


RESOLVER = web.AppKey("resolver", StreamResolver)
STORAGE = web.AppKey("storage", HealthProbe)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
MAX_BODY = web.AppKey("max_body", int)
LIMITER = web.AppKey("limiter", RateLimiter)
METRICS = web.AppKey("metrics", WebMetrics)
SYNC_HEALTH = web.AppKey("sync_health", SyncHealth)  # set when sync loops run in this process

"""What the HTTP routes need from the rest of the program, and where the app keeps it.

The routes depend on these small Protocols, not on concrete classes, so the app can be built
from whatever the composition root wires in (the real Resolver and storage backend in
production and in tests).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from aiohttp import web
from aiohttp_socks import ProxyConnector

from bot.web.metrics import WebMetrics
from bot.web.ratelimit import RateLimiter
from bot.web.signing import RelaySigner
from bot.web.slots import StreamSlots
from core.resolver import ResolverStats
from core.sync.health import SyncHealth
from core.tracks import TrackInfo
from storage.records import CachedStream


class StreamResolver(Protocol):
    """Turns a Spotify track into a playable stream URL (core.resolver.Resolver)."""

    async def resolve(self, track: TrackInfo, force: bool = False) -> CachedStream: ...
    async def resolve_id(self, spotify_id: str, force: bool = False) -> CachedStream: ...
    async def resolve_claimed(self, claimed: TrackInfo, force: bool = False) -> CachedStream: ...
    def cached(self, track_id: str) -> CachedStream | None: ...
    async def resolve_key(self, key: str) -> CachedStream: ...
    async def refused(self, key: str, stream_url: str) -> CachedStream | None: ...

    @property
    def stats(self) -> ResolverStats:
        """A snapshot of the counters, read by /metrics."""
        ...


class HealthProbe(Protocol):
    """Anything that can say whether it answers; the storage backend in practice."""

    async def ping(self) -> None: ...


@dataclass(frozen=True)
class AudioRoute:
    """How the relay reaches YouTube: the way yt-dlp did (stream URLs are bound to it)."""

    proxy: str | None = None
    source_address: str | None = None

    @property
    def http_proxy(self) -> str | None:
        """The proxy to name per request (aiohttp speaks HTTP proxies itself)."""
        return self.proxy if self.proxy and not self.proxy.startswith("socks") else None

    def connector(self) -> aiohttp.TCPConnector:
        """The relay client's connector: from `source_address`, through a SOCKS proxy if set
        (aiohttp-socks; yt-dlp speaks SOCKS itself, so the relay must follow it there)."""
        local = (self.source_address, 0) if self.source_address else None
        if self.proxy and self.proxy.startswith("socks"):
            return ProxyConnector.from_url(self.proxy, local_addr=local)
        return aiohttp.TCPConnector(local_addr=local)


@dataclass(frozen=True)
class RelayConfig:
    signer: RelaySigner
    raw_song_urls: bool = False  # POST /song answers YouTube's own URL (same-network setups)
    route: AudioRoute = AudioRoute()
    # Relay streams one client may hold open at once (shared by every request of this app).
    slots: StreamSlots = field(default_factory=StreamSlots)

    @classmethod
    def private(cls) -> RelayConfig:
        """For an app built without one (tests, the listen page alone): a random secret, so
        its relay URLs are honoured by this app only."""
        return cls(RelaySigner(secrets.token_bytes(32), "http://127.0.0.1"))


RESOLVER = web.AppKey("resolver", StreamResolver)
RELAY = web.AppKey("relay", RelayConfig)
STORAGE = web.AppKey("storage", HealthProbe)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
MAX_BODY = web.AppKey("max_body", int)
BODY_TIMEOUT = web.AppKey("body_timeout_s", float)  # to receive a whole request body
LIMITER = web.AppKey("limiter", RateLimiter)
METRICS = web.AppKey("metrics", WebMetrics)
SYNC_HEALTH = web.AppKey("sync_health", SyncHealth)  # set when sync loops run in this process

"""The embedded aiohttp application: PWA stream lookup, v1 API, health and metrics.

`create_app` only builds the app (no sockets, no tasks); the composition root adds its own
routes (e.g. /spotify/callback) and runs it on the bot's loop with AppRunner + TCPSite. The
proxying ClientSession is the only resource the app owns, opened and closed by cleanup_ctx.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from bot.web import ops, relay_route, songs, tracks
from bot.web.cors import CORS, Cors
from bot.web.errors import error_response, refuse_encoding
from bot.web.metrics import WebMetrics
from bot.web.proxies import TrustedProxies, client_address_middleware
from bot.web.ratelimit import RateLimit, RateLimiter
from bot.web.relay import CHUNK as RELAY_CHUNK
from bot.web.services import (
    BODY_TIMEOUT,
    HTTP_CLIENT,
    LIMITER,
    MAX_BODY,
    METRICS,
    RELAY,
    RESOLVER,
    STORAGE,
    HealthProbe,
    RelayConfig,
    StreamResolver,
)

# A SpotifyTrack body is well under 2 KiB; anything near this limit is not one.
DEFAULT_MAX_BODY = 64 * 1024
DEFAULT_BODY_TIMEOUT = 20.0


def create_app(
    *,
    storage: HealthProbe,
    resolver: StreamResolver,
    cors_origins: Iterable[str] = ("*",),
    rate_limit: RateLimit | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT,
    relay: RelayConfig | None = None,
    trusted_proxies: TrustedProxies | None = None,
) -> web.Application:
    """`relay` signs relay URLs and says how the relay reaches YouTube; without one, URLs are
    signed with a random per-app secret for http://127.0.0.1 (tests, benchmarks)."""
    metrics = WebMetrics(lambda: resolver.stats)
    cors = Cors(cors_origins)

    # One middleware, not three: each layer costs a coroutine per request on the hot path.
    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answers preflights, turns exceptions into plain-text answers, adds CORS headers,
        records metrics."""
        started = time.perf_counter()
        status = 500
        try:
            response: web.StreamResponse | None = None
            if request.method == "OPTIONS":
                response = cors.preflight(request)
            elif (encoding := request.headers.get("Content-Encoding")) is not None and (
                encoding.lower() != "identity"
            ):
                response = refuse_encoding(request)
            if response is None:
                try:
                    response = await handler(request)
                except web.HTTPRequestEntityTooLarge as exc:
                    response = error_response(request, exc)
                except web.HTTPException:
                    raise  # aiohttp's own 404/405 already carry a short text body
                except Exception as exc:
                    response = error_response(request, exc)
            if not response.prepared:  # a streamed one has its headers (cors.before_stream)
                cors.apply(request, response)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            cors.apply(request, exc)
            raise
        finally:
            metrics.observe_request(request, status, time.perf_counter() - started)

    # Behind a trusted proxy the client's address replaces the proxy's first (HTTP_TRUSTED_PROXIES).
    middlewares = [client_address_middleware(trusted_proxies), edge] if trusted_proxies else [edge]
    app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    app[CORS] = cors
    app[STORAGE] = storage
    app[RESOLVER] = resolver
    app[RELAY] = relay or RelayConfig.private()
    app[METRICS] = metrics
    app[MAX_BODY] = max_body_bytes
    app[BODY_TIMEOUT] = body_timeout_s
    app[LIMITER] = RateLimiter(rate_limit or RateLimit(), on_refused=metrics.rate_limited.inc)
    app.cleanup_ctx.append(_http_client)
    app.add_routes(songs.routes)
    app.add_routes(tracks.routes)
    app.add_routes(relay_route.routes)
    app.add_routes(ops.routes)
    return app


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    # No total timeout (a song streams for minutes); relay sets connect/read timeouts per call.
    # auto_decompress=False relays the bytes exactly as sent, matching Content-Length.
    # The relay connects from the address yt-dlp extracted from: stream URLs are bound to it.
    connector = app[RELAY].route.connector()
    # read_bufsize: the relay moves audio in chunks of about this size (bot/web/relay.py).
    async with aiohttp.ClientSession(
        auto_decompress=False, connector=connector, read_bufsize=RELAY_CHUNK
    ) as client:
        app[HTTP_CLIENT] = client
        yield

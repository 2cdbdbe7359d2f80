"""`GET /v1/relay/{key}?exp=&sig=`: a track's audio through this server (bot/web/signing.py).

Browsers (the listen page, the PWA, `/v1/tracks/{id}/stream`) only ever get these URLs; the
relay streams the cached stream URL's bytes with Range passed through. A forged, altered or
expired URL is refused with 403 before anything is resolved or fetched.
"""

from __future__ import annotations

from aiohttp import web

from bot.web.relay import Source, relay
from bot.web.services import HTTP_CLIENT, RELAY, RESOLVER
from storage.records import CachedStream

routes = web.RouteTableDef()


async def relay_stream(request: web.Request, entry: CachedStream) -> web.StreamResponse:
    """Stream `entry`'s audio; a URL YouTube refuses early is re-extracted once."""
    resolver = request.app[RESOLVER]
    config = request.app[RELAY]

    async def refetch() -> Source | None:
        fresh = await resolver.refused(entry.track_id, entry.stream_url)
        return (fresh.stream_url, fresh.http_headers) if fresh is not None else None

    with config.slots.hold(request.remote or "unknown"):
        return await relay(
            request,
            request.app[HTTP_CLIENT],
            (entry.stream_url, entry.http_headers),
            proxy=config.route.http_proxy,
            refetch=refetch,
        )


# No HEAD: aiohttp would answer it with this handler, i.e. a full upstream GET and a body.
@routes.get("/v1/relay/{key}", allow_head=False)
async def relay_get(request: web.Request) -> web.StreamResponse:
    """The track's audio, streamed (Range supported), for a signed URL this server issued."""
    key = request.match_info["key"]
    signer = request.app[RELAY].signer
    if not signer.check(key, request.query.get("exp", ""), request.query.get("sig", "")):
        raise web.HTTPForbidden(text="This audio link is invalid or has expired; reload the page.")
    entry = await request.app[RESOLVER].resolve_key(key)
    return await relay_stream(request, entry)

"""The PWA's stream-lookup endpoints, byte-compatible with its existing client.

The client POSTs a SpotifyTrack object, reads the answer as text and strips every `"`, so a
success is a URL as a JSON string; a failure's body text is shown to the user. By default that
URL is a signed relay URL of ours: YouTube's own only plays from this server's address.

The body's metadata is a claim (`Resolver.resolve_claimed`): it never decides what another
client gets for the same track id.
"""

from __future__ import annotations

import json

from aiohttp import web

from bot.web.payload import read_song_request
from bot.web.relay_route import relay_stream
from bot.web.services import LIMITER, RELAY, RESOLVER

routes = web.RouteTableDef()


def client_of(request: web.BaseRequest) -> str:
    return request.remote or "unknown"


@routes.post("/song")
async def song(request: web.Request) -> web.Response:
    """A URL that plays the track, as a JSON string (a signed relay URL unless configured)."""
    request.app[LIMITER].take(client_of(request))
    wanted = await read_song_request(request)
    entry = await request.app[RESOLVER].resolve_claimed(wanted.track, force=wanted.force)
    relay = request.app[RELAY]
    url = entry.stream_url if relay.raw_song_urls else relay.signer.url(entry.track_id)
    return web.Response(text=json.dumps(url), content_type="application/json")


@routes.post("/download_song")
async def download_song(request: web.Request) -> web.StreamResponse:
    """The track's audio bytes, streamed from the resolved URL (Range passed through)."""
    request.app[LIMITER].take(client_of(request))
    wanted = await read_song_request(request)
    entry = await request.app[RESOLVER].resolve_claimed(wanted.track, force=wanted.force)
    return await relay_stream(request, entry)

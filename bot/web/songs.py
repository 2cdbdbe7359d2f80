"""The PWA's stream-lookup endpoints, byte-compatible with its existing client.

The client POSTs a SpotifyTrack object, reads the answer as text and strips every `"`, so a
success is the stream URL as a JSON string; a failure's body text is shown to the user.
"""

from __future__ import annotations

import json

from aiohttp import web

from bot.web.payload import read_song_request
from bot.web.relay import relay
from bot.web.services import HTTP_CLIENT, LIMITER, RESOLVER

routes = web.RouteTableDef()


def client_of(request: web.BaseRequest) -> str:
    return request.remote or "unknown"


@routes.post("/song")
async def song(request: web.Request) -> web.Response:
    """The stream URL of a track, as a JSON string."""
    request.app[LIMITER].take(client_of(request))
    wanted = await read_song_request(request)
    entry = await request.app[RESOLVER].resolve(wanted.track, force=wanted.force)
    return web.Response(text=json.dumps(entry.stream_url), content_type="application/json")


@routes.post("/download_song")
async def download_song(request: web.Request) -> web.StreamResponse:
    """The track's audio bytes, streamed from the resolved URL (Range passed through)."""
    request.app[LIMITER].take(client_of(request))
    wanted = await read_song_request(request)
    entry = await request.app[RESOLVER].resolve(wanted.track, force=wanted.force)
    return await relay(request, request.app[HTTP_CLIENT], entry.stream_url)

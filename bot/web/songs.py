"""The PWA's stream-lookup endpoints, byte-compatible with its existing client.

The client POSTs a SpotifyTrack object, reads the answer as text and strips every `"`, so a
success is a URL as a JSON string; a failure's body text is shown to the user. By default that
URL is a signed relay URL of ours: YouTube's own only plays from this server's address.

The body's metadata is a claim (`Resolver.resolve_claimed`): it never decides what another
client gets for the same track id.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from aiohttp import web

from bot.web.payload import SongRequest, parse_song_request, read_body
from bot.web.relay_route import relay_stream
from bot.web.services import LIMITER, MAX_BODY, RELAY, RESOLVER

routes = web.RouteTableDef()

# Bodies already parsed (a SongRequest is immutable): listeners of one hot track send the same
# bytes again and again, and parsing them was half of a cache hit's time in the handler.
# Only bodies that parsed are kept; a bad one is refused afresh every time.
# Only small bodies (a real one is ~0.5 KiB): 1,024 bodies of up to MAX_BODY each would hold
# tens of MiB.
_PARSED: OrderedDict[bytes, SongRequest] = OrderedDict()
_PARSED_MAX = 1024
_PARSED_MAX_BYTES = 4096


async def read_song(request: web.Request) -> SongRequest:
    raw = body_at_hand(request)
    return song_request(raw if raw is not None else await read_body(request))


def body_at_hand(request: web.Request) -> bytes | None:
    """The whole body if it came with the headers (a small one does), else None: taken without
    read()'s two awaits (a fifth of a cache hit's time in the handler)."""
    content = request.content
    if not content.is_eof():
        return None
    raw = content.read_nowait()
    # A body over the app's client_max_size raises HTTPRequestEntityTooLarge (read_body too),
    # which the error middleware turns into a plain 413.
    if len(raw) > (limit := request.app[MAX_BODY]):
        raise web.HTTPRequestEntityTooLarge(limit, len(raw))
    return raw


def song_request(raw: bytes) -> SongRequest:
    """The body parsed, or BadRequest; the same bytes are parsed once."""
    wanted = _PARSED.get(raw)
    if wanted is None:
        wanted = parse_song_request(raw)
        if len(raw) <= _PARSED_MAX_BYTES:
            _PARSED[raw] = wanted
            if len(_PARSED) > _PARSED_MAX:
                _PARSED.popitem(last=False)
    return wanted


def client_of(request: web.BaseRequest) -> str:
    return request.remote or "unknown"


@routes.post("/song")
async def song(request: web.Request) -> web.Response:
    """A URL that plays the track, as a JSON string (a signed relay URL unless configured)."""
    app = request.app
    app[LIMITER].take(client_of(request))
    # A hot track's request awaits nothing: its body is at hand, parsed before, and its stream
    # is in the resolver's front cache.
    raw = body_at_hand(request)
    wanted = song_request(raw) if raw is not None else await read_song(request)
    resolver = app[RESOLVER]
    entry = None if wanted.force else resolver.cached(wanted.track.id)
    if entry is None:
        entry = await resolver.resolve_claimed(wanted.track, force=wanted.force)
    relay = app[RELAY]
    if relay.raw_song_urls:
        return web.Response(text=json.dumps(entry.stream_url), content_type="application/json")
    # A relay URL is made of letters, digits and `/:?&=~.`: a JSON string as it stands.
    return web.Response(
        text=f'"{relay.signer.url(entry.track_id)}"', content_type="application/json"
    )


@routes.post("/download_song")
async def download_song(request: web.Request) -> web.StreamResponse:
    """The track's audio bytes, streamed from the resolved URL (Range passed through)."""
    request.app[LIMITER].take(client_of(request))
    wanted = await read_song(request)
    entry = await request.app[RESOLVER].resolve_claimed(wanted.track, force=wanted.force)
    return await relay_stream(request, entry)

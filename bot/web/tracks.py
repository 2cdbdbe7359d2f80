"""The documented v1 API: track lookup by Spotify id, and a redirect to its audio (our relay)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.web.inputs import BadRequest
from bot.web.services import LIMITER, RELAY, RESOLVER
from bot.web.songs import client_of
from core.tracks import check_track_id
from storage.records import CachedStream

routes = web.RouteTableDef()

TRUE = frozenset({"1", "true", "yes"})
FALSE = frozenset({"", "0", "false", "no"})


def _force(request: web.Request) -> bool:
    value = request.query.get("force", "").lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadRequest("'force' must be true or false.")


async def _lookup(request: web.Request) -> CachedStream:
    track_id = check_track_id(request.match_info["id"])
    force = _force(request)
    request.app[LIMITER].take(client_of(request))
    return await request.app[RESOLVER].resolve_id(track_id, force=force)


def describe(entry: CachedStream) -> dict[str, Any]:
    return {
        "id": entry.track_id,
        "stream_url": entry.stream_url,
        "expires_at": entry.expires_at,
        "video_url": entry.video_url,
        "resolved_at": entry.resolved_at,
        "match": {"title": entry.title, "duration_s": entry.duration_s, "score": entry.score},
    }


@routes.get("/v1/tracks/{id}")
async def track(request: web.Request) -> web.Response:
    """The track's stream URL, its expiry and what it was matched to."""
    return web.json_response(describe(await _lookup(request)))


@routes.get("/v1/tracks/{id}/stream")
async def stream(request: web.Request) -> web.Response:
    """A temporary redirect to a signed relay URL of the track's audio."""
    entry = await _lookup(request)
    # Never YouTube's own URL: it only plays from this server's address. A 307 must not be
    # cached past the relay URL's own expiry.
    location = request.app[RELAY].signer.url(entry.track_id)
    return web.Response(status=307, headers={"Location": location, "Cache-Control": "no-store"})

"""The listen-along page: GET /listen/{token}, its event stream and its two static files.

The page is static (HTML, CSS, JS under bot/web/static/); everything that changes arrives over
the server-sent event stream `GET /listen/{token}/events`:

- `state`  — something the page must act on: track, pause/resume, seek, stream, people;
- `beacon` — the same data every `BEACON_S` seconds: position samples for the page's clock
  offset estimate, and the keepalive that lets both ends notice a dead connection;
- `ended`  — the game night is over (or the server is stopping); the page stops.

Every event carries `server_time` (ms since the epoch) next to the host's `position_ms` at
`at` (ms, same clock), so the page computes the host's position as
`position_ms + (server_now - at)` with `server_now` from its own clock plus an estimated offset.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from bot.web.client_limit import ensure_limiter, limit
from bot.web.cors import before_stream
from bot.web.services import RELAY, RelayConfig
from core.errors import NotFound
from core.listen import ListenAlong
from core.listen_view import ListenView, StreamStatus

log = logging.getLogger(__name__)

BEACON_S = 1.0
RETRY_MS = 2000  # how soon a browser reconnects after the stream dropped

Names = Callable[[int, int], str | None]  # (guild id, user id) -> name

LISTEN_KEY = web.AppKey("listen", ListenAlong)
NAMES_KEY: web.AppKey[Names] = web.AppKey("listen_names")

_STATIC = resources.files("bot.web") / "static"
_ASSETS = {
    "listen.js": "application/javascript",
    "listen.css": "text/css",
}
# Read once: they are small and only change with a deploy, and a read per request would block
# the event loop.
_FILES = {
    name: (_STATIC / name).read_text(encoding="utf-8")
    for name in ("listen.html", "listen-ended.html", *_ASSETS)
}
# The album art comes from another origin (i.scdn.co); audio only ever through our own relay
# (YouTube's stream URLs play only from this server's address).
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src https: http: data:; media-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ListenLinks:
    """What /gamenight listen hands out: the page URL of a session's listen token."""

    listen: ListenAlong
    public_base_url: str

    async def link(self, guild_id: int) -> str:
        token = await self.listen.token_for(guild_id)
        return f"{self.public_base_url.rstrip('/')}/listen/{token}"


def _no_names(guild_id: int, user_id: int) -> str | None:
    return None


def add_listen_routes(
    app: web.Application, listen: ListenAlong, names: Names | None = None
) -> None:
    """Add the listen page, its events and assets; `names` turns Discord ids into names."""
    app[LISTEN_KEY] = listen
    app[NAMES_KEY] = names or _no_names
    ensure_limiter(app)
    if RELAY not in app:  # an app without the API (tests): relay URLs signed for this app only
        app[RELAY] = RelayConfig.private()
    app.router.add_get("/listen/assets/{name}", listen_asset)
    app.router.add_get("/listen/{token}", listen_page)
    app.router.add_get("/listen/{token}/events", listen_events)

    async def end_streams(app: web.Application) -> None:
        listen.end_all()  # open event streams return, so shutdown does not wait for them

    app.on_shutdown.append(end_streams)


def _private(response: web.StreamResponse) -> web.StreamResponse:
    # The URL is the secret: keep it out of caches and Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def listen_page(request: web.Request) -> web.StreamResponse:
    limit(request)
    session = await request.app[LISTEN_KEY].find(request.match_info["token"])
    name = "listen.html" if session is not None else "listen-ended.html"
    response = web.Response(
        text=_FILES[name],
        status=200 if session is not None else 404,
        content_type="text/html",
    )
    response.headers["Content-Security-Policy"] = _PAGE_CSP
    return _private(response)


async def listen_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound(text="No such file.")
    response = web.Response(text=_FILES[name], content_type=_ASSETS[name])
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def listen_events(request: web.Request) -> web.StreamResponse:
    limit(request)
    listen = request.app[LISTEN_KEY]
    names = request.app[NAMES_KEY]
    if request.method == "HEAD":  # headers only: a HEAD must not open an endless stream
        found = await listen.find(request.match_info["token"]) is not None
        head = web.Response(status=200 if found else 404, content_type="text/event-stream")
        return _private(head)
    signer = request.app[RELAY].signer

    def relay_url(track_id: str, expires_at: float) -> str:
        # Same-origin path: the page's CSP allows media only from this server.
        return signer.url(track_id, until=expires_at, absolute=False)

    async with contextlib.AsyncExitStack() as stack:
        try:
            sub = await stack.enter_async_context(listen.subscribe(request.match_info["token"]))
        except NotFound:
            return _private(web.Response(status=404, text="This listen link has ended."))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        _private(response)
        before_stream(request, response)
        await response.prepare(request)
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            while True:
                view = await sub.next(BEACON_S)
                kind = "beacon" if view is None else "state"
                view = view or sub.view
                if view.ended:
                    await response.write(_event("ended", {"message": "The game night is over."}))
                    break
                payload = view_payload(view, names, listen.clock(), relay_url)
                await response.write(_event(kind, payload))
        except ConnectionError:  # the browser went away; the subscription ends with us
            log.debug("listen stream of guild %s closed by the browser", sub.view.guild_id)
        return response


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


RelayUrl = Callable[[str, float], str]


def view_payload(
    view: ListenView, names: Names, now: float, relay_url: RelayUrl | None = None
) -> dict[str, Any]:
    """The JSON the page reads; times in ms since the epoch on the server's clock.

    `relay_url(track_id, expires_at)` turns the ready stream into the URL the page plays (our
    relay); without it the page gets no audio URL at all, never YouTube's own.
    """
    snapshot = view.snapshot
    track = view.track
    stream = view.stream
    return {
        "change": view.change.value if view.change else None,
        "server_time": round(now * 1000),
        "playback": None
        if snapshot is None or snapshot.track_id is None
        else {
            "track_id": snapshot.track_id,
            "position_ms": snapshot.position_ms,
            "at": round(snapshot.at * 1000),
            "is_playing": snapshot.is_playing,
            "duration_ms": snapshot.duration_ms,
        },
        "track": None
        if track is None
        else {
            "id": track.id,
            "name": track.name,
            "artists": list(track.artists),
            "album": track.album,
            "art": track.album_art_url,
        },
        "stream": {
            "status": stream.status.value,
            "url": relay_url(track.id, stream.expires_at)
            if relay_url is not None and track is not None and stream.status is StreamStatus.READY
            else None,
            "message": stream.message,
        },
        "people": {
            "host": names(view.guild_id, view.host_user_id) or "Someone",
            "spotify": [names(view.guild_id, uid) or "someone" for uid in view.listener_ids],
            "browser": view.audience,
        },
    }

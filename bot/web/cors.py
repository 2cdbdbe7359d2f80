"""CORS for browser clients (the PWA) served from another origin.

Two parts, both called by the app's middleware: `preflight` answers preflight OPTIONS requests
(the router has no OPTIONS routes, so they would otherwise be 405s); `apply` adds the
Access-Control-* headers to every answer, aiohttp's own errors (HTTPExceptions) included.
A streamed response is sent before the middleware sees it, so its handler calls
`before_stream` before `prepare()`. (An on_response_prepare hook would reach both, but it
costs two coroutines on every request: a tenth of a cache-hit `POST /song`.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aiohttp import web

from bot.web.errors import plain

# Headers a script may read from our responses (Range replies and rate-limit answers).
EXPOSED = "Content-Length, Content-Range, Accept-Ranges, Retry-After"
PREFLIGHT_MAX_AGE = "86400"
HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")


class Cors:
    def __init__(self, origins: Iterable[str]) -> None:
        origins = tuple(o.strip().rstrip("/") for o in origins)
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin.rstrip("/") in self.origins

    def preflight(self, request: web.Request) -> web.Response | None:
        """The answer to a CORS preflight, or None when `request` is not one."""
        origin = request.headers.get("Origin")
        method = request.headers.get("Access-Control-Request-Method")
        if request.method != "OPTIONS" or origin is None or method is None:
            return None
        routing_error = request.match_info.http_exception
        if isinstance(routing_error, web.HTTPNotFound):
            raise routing_error
        if not self.allows(origin):
            return plain(403, "This origin may not call this API (CORS).")
        if isinstance(routing_error, web.HTTPMethodNotAllowed):
            allowed = sorted(routing_error.allowed_methods)
        else:
            allowed = [request.match_info.route.method]
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ", ".join(allowed)
        requested = request.headers.get("Access-Control-Request-Headers", "").strip()
        if requested and HEADER_LIST.match(requested):
            # We use no cookies or credentials, so any request header is harmless to allow.
            response.headers["Access-Control-Allow-Headers"] = requested
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response

    def apply(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """Add the Access-Control-* headers `request` calls for (before `response` is sent)."""
        if self.any_origin:  # the common case, on every response: the shortest way through
            if "Origin" in request.headers:
                headers = response.headers
                headers["Access-Control-Allow-Origin"] = "*"
                headers["Access-Control-Expose-Headers"] = EXPOSED
            return
        # The answer depends on the Origin header; caches must key on it.
        vary = response.headers.get("Vary")
        response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
        origin = request.headers.get("Origin")
        if origin is None or not self.allows(origin):
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED


CORS = web.AppKey("cors", Cors)


def before_stream(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Give a response its handler streams the CORS headers the middleware gives the others.
    Call it before `prepare()`; apps not made by create_app have no CORS and get none."""
    cors = request.app.get(CORS) if isinstance(request, web.Request) else None
    if cors is not None:
        cors.apply(request, response)

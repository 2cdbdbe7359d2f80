"""The one place HTTP errors become responses: a short plain-text body and the right status.

The PWA shows the body text of a failed request to its user, so every message is one clear
sentence; nothing that is not a UserFacingError ever reaches the client beyond a generic 500.
"""

from __future__ import annotations

import logging
import math

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from bot.web.services import MAX_BODY
from core.errors import STORAGE_DOWN, UserFacingError
from storage.errors import StorageUnavailable

log = logging.getLogger(__name__)


def plain(status: int, message: str, retry_after: float | None = None) -> web.Response:
    response = web.Response(status=status, text=bounded(message) + "\n")
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


# An echoed or built message never grows past this (a client's text may be in it).
MAX_MESSAGE = 300
CLIENT_CLOSED = 499  # nginx's code for "the client went away first": only in metrics


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to `limit` characters, with control characters (CR, LF ...) as '?'."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return cut.translate(_CONTROLS)


_CONTROLS = {c: "?" for c in [*range(32), *range(127, 160)]}


def logged_path(request: web.Request) -> str:
    """The request path as it may appear in a log line: the client wrote it, so it is cut
    short and its control characters (a %0d%0a decodes to a line break) are escaped."""
    return bounded(request.path, 200)


def refuse_encoding(request: web.Request) -> web.Response:
    # The server never inflates a request body (bot.web.server): a compressed body would be
    # garbage to the JSON parser, so say what is wrong instead.
    return plain(415, "Compressed request bodies are not accepted: send plain JSON.")


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The answer for an exception a handler raised (HTTPExceptions other than 413 excluded)."""
    if isinstance(exc, ConnectionError):
        # The client left (mid-body or mid-answer): nobody reads this answer, nothing failed.
        log.debug("%s %s: the client went away", request.method, logged_path(request))
        return plain(CLIENT_CLOSED, "Client closed the request.")
    if isinstance(exc, RequestPayloadError):
        log.debug("%s %s: malformed body: %s", request.method, logged_path(request), exc)
        return plain(400, "The request body is malformed (bad chunked encoding or length).")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit_kib = request.app[MAX_BODY] // 1024
        return plain(413, f"Request body too large (limit {limit_kib} KiB).")
    if isinstance(exc, UserFacingError):
        if exc.http_status >= 500:
            log.warning("%s %s failed: %s", request.method, logged_path(request), exc.message)
        return plain(exc.http_status, exc.message, getattr(exc, "retry_after", None))
    if isinstance(exc, StorageUnavailable):  # an outage: logged once, by storage
        return plain(503, STORAGE_DOWN, 60)
    # Any other StorageError (corrupt or undecryptable data, a bad query) is a fault of ours:
    # "your data is safe" would not be true, so it is a 500 with its traceback.
    log.error("Unhandled error on %s %s", request.method, logged_path(request), exc_info=exc)
    return plain(500, "Internal server error; it has been logged. Try again later.")

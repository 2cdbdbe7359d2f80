"""The one place HTTP errors become responses: a short plain-text body and the right status.

The PWA shows the body text of a failed request to its user, so every message is one clear
sentence; nothing that is not a UserFacingError ever reaches the client beyond a generic 500.
"""

from __future__ import annotations

import logging
import math

from aiohttp import web

from bot.web.services import MAX_BODY
from core.errors import UserFacingError
from storage.errors import StorageError

log = logging.getLogger(__name__)


def plain(status: int, message: str, retry_after: float | None = None) -> web.Response:
    response = web.Response(status=status, text=message + "\n")
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The answer for an exception a handler raised (HTTPExceptions other than 413 excluded)."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit_kib = request.app[MAX_BODY] // 1024
        return plain(413, f"Request body too large (limit {limit_kib} KiB).")
    if isinstance(exc, UserFacingError):
        if exc.http_status >= 500:
            log.warning("%s %s failed: %s", request.method, request.path, exc.message)
        return plain(exc.http_status, exc.message, getattr(exc, "retry_after", None))
    if isinstance(exc, StorageError):
        log.warning("%s %s: storage failed: %s", request.method, request.path, exc)
        return plain(503, "The track cache is unavailable right now; try again shortly.", 5)
    log.error("Unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return plain(500, "Internal server error; it has been logged. Try again later.")

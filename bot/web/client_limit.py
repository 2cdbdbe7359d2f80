"""The per-client request budget for routes that may live in an app not made by create_app.

The link and listen routes are added to the app by the composition root and by tests on bare
apps; both need the same limiter, and a refusal that answers the same (a plain 429 with
Retry-After) with or without create_app's error middleware.
"""

from __future__ import annotations

from aiohttp import web

from bot.web.ratelimit import RateLimit, RateLimiter, TooManyRequests
from bot.web.services import LIMITER
from bot.web.songs import client_of


def ensure_limiter(app: web.Application) -> None:
    """Give `app` the default limiter unless create_app already gave it one."""
    if LIMITER not in app:
        app[LIMITER] = RateLimiter(RateLimit())


def limit(request: web.Request) -> None:
    """Spend one request of the client's budget, or raise aiohttp's own 429."""
    try:
        request.app[LIMITER].take(client_of(request))
    except TooManyRequests as exc:
        raise web.HTTPTooManyRequests(
            text=exc.message + "\n", headers={"Retry-After": str(exc.retry_after)}
        ) from None

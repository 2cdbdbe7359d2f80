"""The embedded HTTP server: the PWA's stream-lookup API, the v1 API, health and metrics."""

from bot.web.app import create_app
from bot.web.ratelimit import RateLimit

__all__ = ["RateLimit", "create_app"]

"""Operator endpoints: health for load balancers and compose, metrics for Prometheus."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.web.errors import plain
from bot.web.services import METRICS, STORAGE

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

PING_TIMEOUT = 2.0


@routes.get("/healthcheck")
async def healthcheck(request: web.Request) -> web.Response:
    """200 when storage answers, 503 otherwise."""
    try:
        async with asyncio.timeout(PING_TIMEOUT):
            await request.app[STORAGE].ping()
    except Exception as exc:  # any way storage fails to answer means "not healthy"
        # DEBUG: the outage itself is logged once by storage; a probe every few seconds
        # would repeat it.
        log.debug("healthcheck: storage does not answer: %r", exc)
        return plain(503, "unhealthy: storage does not answer")
    return plain(200, "ok")


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app's registry."""
    return request.app[METRICS].render()

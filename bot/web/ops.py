"""Operator endpoints: health for load balancers and compose, metrics for Prometheus."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.web.errors import plain
from bot.web.services import METRICS, STORAGE, SYNC_HEALTH

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

PING_TIMEOUT = 2.0


@routes.get("/healthcheck")
async def healthcheck(request: web.Request) -> web.Response:
    """200 when storage answers and every sync loop goes round, 503 otherwise; storage writes
    that fail (syncing goes on from memory) are reported in the body."""
    try:
        async with asyncio.timeout(PING_TIMEOUT):
            await request.app[STORAGE].ping()
    except Exception as exc:  # any way storage fails to answer means "not healthy"
        # DEBUG: the outage itself is logged once by storage; a probe every few seconds
        # would repeat it.
        log.debug("healthcheck: storage does not answer: %r", exc)
        return plain(503, "unhealthy: storage does not answer")
    sync = request.app.get(SYNC_HEALTH)
    if sync is None:
        return plain(200, "ok")
    report = sync.report()
    lines = [f"sync loops: {report.loops}"]
    if report.failing_for_s is not None:
        lines.append(
            f"degraded: storage writes failing for {report.failing_for_s:.0f} s "
            f"({report.write_failures} failed); syncing from memory"
        )
    if report.stalled:
        lines.append(f"stalled sync loops: {len(report.stalled)}")
        return _health(503, ["unhealthy", *lines])
    return _health(200, ["ok", *lines])


def _health(status: int, lines: list[str]) -> web.Response:
    # Our own lines, one per fact: not `plain`, which flattens a client's line breaks.
    return web.Response(status=status, text="\n".join(lines) + "\n")


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app's registry."""
    return request.app[METRICS].render()

"""The HTTP server's own defences: what aiohttp leaves open to a hostile or broken client.

aiohttp's defaults suit a trusted network: request bodies are inflated automatically (a 1 MB
gzip body can inflate to 1 GiB on the event loop), nothing bounds how long a client may take to
send its headers, the keep-alive idle timeout is an hour, one address may open any number of
connections, and its own protocol errors answer with the raw request bytes and log a traceback
at ERROR. `start_http` runs an app with each of those bounded by `ServerLimits`:

- no automatic decompression (the app refuses Content-Encoding with 415, see bot.web.app);
- a header deadline per request, a body deadline where a handler reads the body;
- an idle keep-alive timeout longer than common reverse proxies' upstream idle timeouts
  (nginx 60 s), so the proxy closes first and never reuses a connection we just dropped;
- a cap on simultaneous connections per client address (behind a reverse proxy every client
  has the proxy's address: raise the cap there);
- protocol errors answered with one short sentence, logged at DEBUG (a client's doing).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from bot.web.proxies import TrustedProxies

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    header_timeout_s: float = 10.0  # from a request's first byte (or the connect) to its headers
    body_timeout_s: float = 20.0  # to read a whole request body where a handler reads one
    keepalive_timeout_s: float = 75.0  # idle time between requests before we close
    max_connections_per_client: int = 64  # simultaneous connections from one address
    lingering_s: float = 2.0  # how long an unread body is drained after the answer
    # HTTP_TRUSTED_PROXIES: a proxy carries many clients, so its connections are not capped
    # (per-client limits then come from the rate limiter, which sees X-Forwarded-For).
    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if min(self.header_timeout_s, self.body_timeout_s, self.keepalive_timeout_s) <= 0:
            raise ValueError(f"server timeouts must be positive, got {self}")
        if self.max_connections_per_client < 1:
            raise ValueError(f"max_connections_per_client must be >= 1, got {self}")


_TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\nRetry-After: 5\r\nContent-Length: 41\r\n\r\n"
    b"Too many connections from your address.\r\n"
)
_PROTOCOL_TEXT = {
    400: "Bad request: this is not a valid HTTP request.",
    413: "Request too large.",
    431: "Request headers too large.",
}


class _GuardedHandler(RequestHandler):
    """aiohttp's connection handler, plus the per-address cap and the header deadline."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._peer: str | None = None  # set once admitted
        self._header_timer: asyncio.TimerHandle | None = None
        self._requests_at_timer = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if peer else "unknown"
        if not self._guard.admit(host):
            log.debug("refused a connection from %s: too many open", host)
            transport.write(_TOO_MANY)  # type: ignore[attr-defined]
            transport.close()
            return
        self._peer = host
        super().connection_made(transport)
        self._start_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._peer is None:
            return  # refused: never handed to aiohttp
        self._guard.release(self._peer)
        self._peer = None
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Waiting for the next request (not reading a body): the new bytes start its headers.
        waiting = self._waiter is not None and not self._waiter.done()
        if self._header_timer is None and waiting:
            self._start_header_timer()
        super().data_received(data)
        if self._header_timer is not None and self._request_count != self._requests_at_timer:
            self._stop_header_timer()

    def _start_header_timer(self) -> None:
        self._requests_at_timer = self._request_count
        self._header_timer = self._loop.call_later(
            self._guard.limits.header_timeout_s, self._headers_late
        )

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        transport = self.transport
        if self._request_count == self._requests_at_timer and transport is not None:
            log.debug("closed a connection from %s: headers too slow", self._peer)
            self.force_close()  # may drop self.transport: close the one we hold
            transport.close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        # The parser's own errors: aiohttp would echo the offending bytes and log a traceback
        # at ERROR; a malformed request is the client's business.
        log.debug("bad HTTP from %s: %r", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        text = _PROTOCOL_TEXT.get(status, _PROTOCOL_TEXT[400])
        response = web.Response(status=status, text=text + "\n")
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's Server making `_GuardedHandler`s and counting connections per address."""

    def __init__(self, *args: Any, limits: ServerLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.per_client: Counter[str] = Counter()
        self._proxies = TrustedProxies(limits.trusted_proxies)

    def admit(self, host: str) -> bool:
        cap = self.limits.max_connections_per_client
        if self.per_client[host] >= cap and not self._proxies.trusts(host):
            return False
        self.per_client[host] += 1
        return True

    def release(self, host: str) -> None:
        self.per_client[host] -= 1
        if self.per_client[host] <= 0:
            del self.per_client[host]

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """AppRunner whose server is a GuardedServer (aiohttp has no hook for the handler class)."""

    def __init__(self, app: web.Application, limits: ServerLimits, **kwargs: Any) -> None:
        kwargs.setdefault("access_log", None)
        super().__init__(
            app,
            auto_decompress=False,
            keepalive_timeout=limits.keepalive_timeout_s,
            lingering_time=limits.lingering_s,
            **kwargs,
        )
        self.limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            limits=self.limits,
            **plain._kwargs,
        )


async def start_http(
    app: web.Application, host: str, port: int, limits: ServerLimits | None = None
) -> GuardedRunner:
    """Set up `app` behind the limits and listen on host:port; the caller cleans it up."""
    runner = GuardedRunner(app, limits or ServerLimits())
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner

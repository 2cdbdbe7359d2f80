"""bot/web/server.py reaches into aiohttp's private API (aiohttp has no hook for the connection
handler class): this test names every piece it uses, so an aiohttp upgrade that moves one
fails here, loudly, rather than in production as a stalled or unguarded server."""

from __future__ import annotations

import inspect
from importlib import metadata

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from bot.web.server import GuardedRunner, GuardedServer, ServerLimits, _GuardedHandler


def test_the_pinned_aiohttp_is_installed() -> None:
    # pyproject pins aiohttp~=3.14.5 for the private API below; a different minor may move it.
    assert metadata.version("aiohttp").startswith("3.14."), metadata.version("aiohttp")


async def test_the_private_aiohttp_api_server_py_uses_is_there() -> None:
    assert "_make_server" in vars(web.AppRunner)  # GuardedRunner overrides it
    assert inspect.iscoroutinefunction(web.AppRunner._make_server)
    params = list(inspect.signature(RequestHandler.handle_error).parameters)
    assert params == ["self", "request", "status", "exc", "message"]
    assert "output_size" in AbstractStreamWriter.__annotations__  # handle_error reads it
    assert "writer" in vars(BaseRequest)

    runner = GuardedRunner(web.Application(), ServerLimits())
    await runner.setup()
    try:
        server = runner.server
        assert isinstance(server, GuardedServer)
        for name in ("_loop", "_kwargs", "request_handler", "request_factory"):
            assert hasattr(server, name), name
        assert hasattr(server, "handler_cancellation")
        assert isinstance(server._kwargs, dict)
        handler = server()
        assert isinstance(handler, _GuardedHandler)
        for name in ("_waiter", "_request_count", "_loop", "transport", "force_close"):
            assert hasattr(handler, name), name
        assert handler._waiter is None and handler._request_count == 0
    finally:
        await runner.cleanup()

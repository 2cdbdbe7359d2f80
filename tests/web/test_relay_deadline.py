"""A listener that stops reading does not hold its socket and our upstream connection forever:
the relay gives each write a deadline, then closes (bot.web.relay.write_within)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.web import relay as relay_module
from bot.web.relay import relay


async def _endless_audio(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "audio/webm"})
    await response.prepare(request)
    chunk = b"\0" * 65536
    while True:
        await response.write(chunk)


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


@pytest.fixture
async def relaying(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[int, asyncio.Event]]:
    monkeypatch.setattr(relay_module, "WRITE_TIMEOUT_S", 0.5)
    upstream = web.Application()
    upstream.router.add_get("/audio", _endless_audio)
    up_runner, up_port = await _serve(upstream)
    ended = asyncio.Event()
    async with aiohttp.ClientSession() as client:

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await relay(request, client, (f"http://127.0.0.1:{up_port}/audio", ()))
            finally:
                ended.set()

        app = web.Application()
        app.router.add_get("/download", handler)
        runner, port = await _serve(app)
        try:
            yield port, ended
        finally:
            await runner.cleanup()
            await up_runner.cleanup()


async def test_a_client_that_stops_reading_is_dropped_after_the_write_deadline(
    relaying: tuple[int, asyncio.Event],
) -> None:
    port, ended = relaying
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)  # the server runs on this loop: never block it
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await loop.sock_recv(sock, 100)).startswith(b"HTTP/1.1 200")
    # ... and never read again. The relay fills the buffers, then waits: 0.5 s, then gone.
    started = time.monotonic()
    async with asyncio.timeout(20):  # buffers fill at loopback speed; 0.5 s; a loaded machine
        await ended.wait()
    assert time.monotonic() - started < 20
    # Its connection is closed: reading on drains what was buffered, then hits the end.
    async with asyncio.timeout(10):
        while await loop.sock_recv(sock, 1 << 20):
            pass
    sock.close()

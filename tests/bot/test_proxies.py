"""HTTP_TRUSTED_PROXIES (#14 review): behind Caddy each player is their own client; a forged
X-Forwarded-For from anyone else changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
from aiohttp import web

from bot.web.proxies import TrustedProxies
from bot.web.server import ServerLimits, start_http
from tests.bot.conftest import World
from tests.conftest import free_port


def test_the_client_is_the_right_most_untrusted_hop() -> None:
    proxies = TrustedProxies(["127.0.0.1/32", "10.0.0.0/8", "::1/128"])
    # Caddy on this host: it appends the address it saw.
    assert proxies.client("127.0.0.1", ["203.0.113.5"]) == "203.0.113.5"
    # The client forged a left entry; two of our proxies appended theirs.
    hops = ["198.51.100.1, 203.0.113.5", "10.1.2.3"]
    assert proxies.client("127.0.0.1", hops) == "203.0.113.5"
    assert proxies.client("::ffff:127.0.0.1", ["203.0.113.5"]) == "203.0.113.5"
    assert proxies.client("::1", ["2001:db8::7"]) == "2001:db8::7"
    # Not from a proxy: the header is the client's own word and is ignored.
    assert proxies.client("192.0.2.44", ["203.0.113.5"]) == "192.0.2.44"
    # From a proxy but nothing usable: the proxy's address.
    assert proxies.client("127.0.0.1", []) == "127.0.0.1"
    assert proxies.client("127.0.0.1", ["not-an-ip"]) == "127.0.0.1"
    assert proxies.client("127.0.0.1", ["10.9.9.9"]) == "127.0.0.1"
    assert TrustedProxies().client("127.0.0.1", ["203.0.113.5"]) == "127.0.0.1"


async def _song_statuses(world: World, forwarded: list[str]) -> list[int]:
    statuses = []
    url = f"http://127.0.0.1:{world.settings.http_port}/song"
    async with aiohttp.ClientSession() as http:
        for address in forwarded:
            headers = {"X-Forwarded-For": address, "Content-Type": "application/json"}
            async with http.post(url, data="{}", headers=headers) as r:
                statuses.append(r.status)
    return statuses


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        # Behind Caddy on 127.0.0.1: a bucket per player; the third request is player one's second.
        (("127.0.0.1/32",), [400, 400, 429]),
        # No proxy trusted: a forged X-Forwarded-For does not buy a fresh bucket.
        ((), [400, 429, 429]),
        # A proxy is trusted, but not this peer: the same.
        (("10.0.0.0/8",), [400, 429, 429]),
    ],
)
async def test_the_rate_limit_counts_forwarded_clients_only_from_trusted_proxies(
    world: World, trusted: tuple[str, ...], expected: list[int]
) -> None:
    world.settings = dataclasses.replace(
        world.settings, http_rate_burst=1, http_rate_per_s=0.001, http_trusted_proxies=trusted
    )
    async with world.run():
        found = await _song_statuses(world, ["203.0.113.5", "203.0.113.6", "203.0.113.5"])
    assert found == expected  # 400: the empty body got past the limiter and was refused


async def _open_and_ask(port: int, opened: list[asyncio.StreamWriter]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened.append(writer)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    return await reader.readline()


@pytest.mark.parametrize(
    ("trusted", "second"),
    [(("127.0.0.1/32",), b"HTTP/1.1 200 OK\r\n"), ((), b"HTTP/1.1 503 Service Unavailable\r\n")],
)
async def test_a_trusted_proxys_connections_are_not_capped(
    trusted: tuple[str, ...], second: bytes
) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    port = free_port()
    limits = ServerLimits(max_connections_per_client=1, trusted_proxies=trusted)
    runner = await start_http(app, "127.0.0.1", port, limits)
    opened: list[asyncio.StreamWriter] = []
    try:
        # The first stays open (keep-alive) while the second connects.
        assert await _open_and_ask(port, opened) == b"HTTP/1.1 200 OK\r\n"
        assert await _open_and_ask(port, opened) == second
    finally:
        for writer in opened:
            writer.close()
            await writer.wait_closed()
        await runner.cleanup()

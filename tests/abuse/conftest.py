"""The abuse suite's rig: the real Game Night (composition root, GuardedRunner, SQLite) against
the fakes, with tight server limits so slow-client tests finish in seconds, and a record of
every ERROR log line and every 5xx answer a hostile client caused.

Clients come from several loopback addresses (127.0.0.0/8 is all loopback on Linux), so the
per-address connection cap can be exercised without refusing the probes that measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest

from bot.__main__ import Running
from tests.bot.conftest import World, _spotdl_home, world  # noqa: F401 - fixtures

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
KEEPALIVE_S = 5.0
MAX_PER_CLIENT = 64
TRACK_ID = "4uLU6hMCjMI75M1A2tKUQC"
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")


class ErrorRecords(logging.Handler):
    """Every record at ERROR or above, from any logger, while installed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]


@pytest.fixture
def error_records() -> Iterator[ErrorRecords]:
    handler = ErrorRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@dataclass
class Target:
    """The running server and what the abuse did to it."""

    app: Running
    port: int
    statuses: list[tuple[str, int]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seen(self, what: str, status: int) -> int:
        self.statuses.append((what, status))
        return status

    def server_errors(self) -> list[tuple[str, int]]:
        return [(what, status) for what, status in self.statuses if status >= 500]

    async def request(
        self, method: str, path: str, *, data: bytes | None = None, **headers: str
    ) -> int:
        async with (
            aiohttp.ClientSession(auto_decompress=False) as http,
            http.request(
                method,
                self.base + path,
                data=data,
                headers=headers,
                allow_redirects=False,
                skip_auto_headers=("Content-Type",) if "Content-Type" not in headers else (),
            ) as response,
        ):
            await response.read()
            return self.seen(f"{method} {path[:60]}", response.status)

    async def raw(
        self, data: bytes, *, source: str = "127.0.0.1", within: float = 10.0
    ) -> tuple[int | None, bytes]:
        """Send raw bytes, read the answer until the server closes: (status or None, bytes)."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(source, 0)
        )
        try:
            writer.write(data)
            await writer.drain()
            async with asyncio.timeout(within):
                answer = await reader.read(65536)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        match = _STATUS.match(answer)
        status = int(match.group(1)) if match else None
        if status is not None:
            self.seen(f"raw {data[:40]!r}", status)
        return status, answer


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def target(world: World) -> AsyncIterator[Target]:  # noqa: F811 - the fixture
    world.settings = dataclasses.replace(
        world.settings,
        http_header_timeout_s=HEADER_TIMEOUT_S,
        http_body_timeout_s=BODY_TIMEOUT_S,
        http_keepalive_timeout_s=KEEPALIVE_S,
        http_max_connections_per_client=MAX_PER_CLIENT,
        http_rate_burst=100_000,  # the fuzz must reach validation, not the rate limit
    )
    async with world.run() as app:
        yield Target(app, world.settings.http_port)

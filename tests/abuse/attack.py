"""The attacking side of tests/abuse/test_abuse_load.py, run as its own process.

A separate process, not a thread: the attackers' Python work must not compete with the server
for the GIL, or the measured event-loop stall would be the test's own. Usage:

    python -m tests.abuse.attack PORT BOMB_FILE HEADER_TIMEOUT BODY_TIMEOUT

prints one JSON list of cuts: {"kind", "status", "after_s"} per client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BOMBS = 8
SLOW_CLIENTS = 200
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0


@dataclass
class Cut:
    kind: str
    status: int | None  # what the server answered, if anything
    after_s: float  # how long until the server closed the connection


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    data = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(4096):
            data += chunk
    return data


def _status(answer: bytes) -> int | None:
    if answer.startswith(b"HTTP/1.1 "):
        return int(answer[9:12])
    return None


async def _drip(port: int, source: str, name: str, start: bytes, more: bytes, within: float) -> Cut:
    """A client that sends `start`, then `more` every half second and never finishes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    started = time.monotonic()
    writer.write(start)

    async def drip() -> None:
        while True:
            await asyncio.sleep(0.5)
            writer.write(more)

    dripping = asyncio.create_task(drip())
    try:
        answer = await read_until_closed(reader, within)
    except (ConnectionError, TimeoutError):
        answer = b""
    finally:
        dripping.cancel()
        writer.transport.abort()
    return Cut(name, _status(answer), time.monotonic() - started)


async def slow_headers(port: int, source: str) -> Cut:
    start = b"POST /song HTTP/1.1\r\nHost: x\r\n"
    return await _drip(port, source, "slow headers", start, b"X-Slow: y\r\n", HEADER_TIMEOUT_S + 10)


async def slow_body(port: int, source: str) -> Cut:
    start = (
        b"POST /song HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )
    return await _drip(port, source, "slow body", start, b" " * 10, BODY_TIMEOUT_S + 10)


async def bomb(port: int, source: str, body: bytes) -> Cut:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    started = time.monotonic()
    writer.write(
        b"POST /song HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    try:
        answer = await read_until_closed(reader, 30)
    except (ConnectionError, TimeoutError):
        answer = b""
    finally:
        writer.transport.abort()
    return Cut("bomb", _status(answer), time.monotonic() - started)


async def _attack(port: int, body: bytes) -> list[Cut]:
    # 50 slow clients per address, under the per-address cap: all 200 are let in and held.
    sources = [f"127.0.1.{1 + i // 50}" for i in range(SLOW_CLIENTS)]
    slow = [
        (slow_headers if i % 2 == 0 else slow_body)(port, source)
        for i, source in enumerate(sources)
    ]
    bombs = [bomb(port, f"127.0.2.{i + 1}", body) for i in range(BOMBS)]
    return list(await asyncio.gather(*slow, *bombs))


def main(argv: list[str]) -> int:
    global HEADER_TIMEOUT_S, BODY_TIMEOUT_S
    port, bomb_file = int(argv[0]), Path(argv[1])
    HEADER_TIMEOUT_S, BODY_TIMEOUT_S = float(argv[2]), float(argv[3])
    cuts = asyncio.run(_attack(port, bomb_file.read_bytes()))
    print(json.dumps([dataclasses.asdict(c) for c in cuts]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

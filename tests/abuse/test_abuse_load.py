"""Compressed-body bombs and slow clients against the real server, measured.

The attackers run in their own process (tests/abuse/attack.py), so what the server's loop
shows is the server's doing. Targets (issue #13): the server's longest event-loop stall under
50 ms while 8 bombs (1 MiB of gzip inflating to 1 GiB) and 200 slow clients are in flight;
/healthcheck answers throughout; every slow client is cut off by the header or body deadline;
no 5xx, no ERROR record; open file descriptors back to the baseline afterwards. The figures
are printed (run with -s, or see docs/ABUSE.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
import zlib
from pathlib import Path

import aiohttp
import pytest

from tests.abuse.attack import BOMBS, SLOW_CLIENTS, Cut, read_until_closed
from tests.abuse.conftest import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    KEEPALIVE_S,
    MAX_PER_CLIENT,
    ErrorRecords,
    Target,
    open_fds,
)

TARGET_STALL_MS = 50.0
# The target is 50 ms; a loaded, shared 2-core machine adds scheduling noise of its own, so
# the assertion allows 3x. With aiohttp's automatic inflation each bomb alone stalls the loop
# for about a second: the check still fails by an order of magnitude if that comes back.
STALL_LIMIT_MS = 3 * TARGET_STALL_MS
SLACK_S = 3.0
ROOT = Path(__file__).resolve().parents[2]  # on top of a deadline before a cut-off counts as missed


@functools.cache
def gzip_bomb() -> bytes:
    """1 GiB of zeros as ~1 MiB of gzip (made once per session: ~3 s)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [packer.compress(zeros) for _ in range(1024)]
    parts.append(packer.flush())
    return b"".join(parts)


async def run_attack(port: int, body: bytes, folder: Path) -> list[Cut]:
    bomb_file = folder / "bomb.gz"
    await asyncio.to_thread(bomb_file.write_bytes, body)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.abuse.attack",
        str(port),
        str(bomb_file),
        str(HEADER_TIMEOUT_S),
        str(BODY_TIMEOUT_S),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return [Cut(**cut) for cut in json.loads(out)]


async def test_abuse_bombs_and_slow_clients_do_not_stall_the_server(
    target: Target,
    error_records: ErrorRecords,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    body = await asyncio.to_thread(gzip_bomb)
    assert len(body) < 2 << 20 and zlib.decompressobj(31).decompress(body, 1 << 20)[:4] == bytes(4)
    assert await target.request("GET", "/healthcheck") == 200  # warm: the baseline has a pool
    await asyncio.sleep(0.2)
    baseline = open_fds()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    worst_stall = 0.0
    probes: list[tuple[int, float]] = []
    peak_fds = baseline

    async def watch_loop() -> None:
        nonlocal worst_stall, peak_fds
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            worst_stall = max(worst_stall, loop.time() - before - 0.005)
            peak_fds = max(peak_fds, open_fds())

    async def probe_health() -> None:
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                started = loop.time()
                async with http.get(target.base + "/healthcheck") as response:
                    await response.read()
                probes.append((target.seen("probe", response.status), loop.time() - started))
                await asyncio.sleep(0.1)

    watchers = [asyncio.create_task(watch_loop()), asyncio.create_task(probe_health())]
    started = time.monotonic()
    try:
        cuts = await run_attack(target.port, body, tmp_path)
    finally:
        stop.set()
        await asyncio.gather(*watchers)
    attack_s = time.monotonic() - started

    settled = time.monotonic()
    # Polled: open fds are a number in /proc, not an event anything could set.
    while open_fds() > baseline + 2 and time.monotonic() - settled < 10:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    after = open_fds()

    headers = [c for c in cuts if c.kind == "slow headers"]
    bodies = [c for c in cuts if c.kind == "slow body"]
    bombs = [c for c in cuts if c.kind == "bomb"]
    stall_ms = worst_stall * 1000
    with capsys.disabled():
        print(
            f"\nabuse figures: {BOMBS} gzip bombs ({len(body) >> 10} KiB -> 1 GiB), "
            f"{SLOW_CLIENTS} slow clients, attack {attack_s:.1f} s\n"
            f"  longest event-loop stall: {stall_ms:.1f} ms (target < {TARGET_STALL_MS:.0f})\n"
            f"  /healthcheck during it: {len(probes)} probes, "
            f"{sum(s == 200 for s, _ in probes)} ok, "
            f"slowest {max((t for _, t in probes), default=0) * 1000:.1f} ms\n"
            f"  bombs answered: {sorted({c.status for c in bombs}, key=str)}, "
            f"slowest {max(c.after_s for c in bombs):.2f} s\n"
            f"  slow headers cut after {max(c.after_s for c in headers):.1f} s (deadline "
            f"{HEADER_TIMEOUT_S:.0f}), slow bodies after {max(c.after_s for c in bodies):.1f} s "
            f"(deadline {BODY_TIMEOUT_S:.0f}) with {sorted({c.status for c in bodies}, key=str)}\n"
            f"  fds: baseline {baseline}, peak {peak_fds}, after {after}\n"
            f"  5xx answers: {len(target.server_errors())}, "
            f"ERROR records: {len(error_records.records)}"
        )

    assert all(c.status == 415 for c in bombs), bombs
    assert max(c.after_s for c in headers) < HEADER_TIMEOUT_S + SLACK_S
    assert all(c.status == 408 for c in bodies), {c.status for c in bodies}
    assert max(c.after_s for c in bodies) < BODY_TIMEOUT_S + SLACK_S + 2  # + lingering drain
    assert probes and all(status == 200 for status, _ in probes)
    assert peak_fds >= baseline + SLOW_CLIENTS // 2  # the clients really were held open
    assert after <= baseline + 2
    assert stall_ms < STALL_LIMIT_MS
    assert target.server_errors() == []
    assert error_records.lines() == []


async def test_abuse_one_address_cannot_hold_every_connection(
    target: Target, error_records: ErrorRecords
) -> None:
    extra = 6
    conns = [
        await asyncio.open_connection("127.0.0.1", target.port, local_addr=("127.0.3.1", 0))
        for _ in range(MAX_PER_CLIENT + extra)
    ]
    refused = 0
    for reader, _writer in conns:
        try:
            async with asyncio.timeout(0.5):
                answer = await reader.read(200)
        except TimeoutError:
            continue  # admitted: waiting for its headers
        if answer.startswith(b"HTTP/1.1 503"):
            refused += 1
    assert refused == extra
    assert await target.request("GET", "/healthcheck") == 200  # others still get in
    for _reader, writer in conns:
        writer.transport.abort()
    await asyncio.sleep(0.2)
    # The slots are free again.
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", target.port, local_addr=("127.0.3.1", 0)
    )
    writer.write(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await reader.read(100)).startswith(b"HTTP/1.1 200")
    writer.close()
    assert error_records.lines() == []


async def test_abuse_idle_keepalive_connections_are_closed(target: Target) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    writer.write(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
    # The status line, headers, then "ok" and the sync loops line of the answer.
    assert (await reader.readuntil(b"sync loops: 0\n")).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    assert await read_until_closed(reader, KEEPALIVE_S + SLACK_S) == b""
    assert KEEPALIVE_S - 1 <= time.monotonic() - started < KEEPALIVE_S + SLACK_S
    writer.close()

"""Benchmark: cache-hit `POST /song` against a bare aiohttp handler, in the same run.

    python -m tests.bench.http_song [--seconds 5] [--concurrency 64] [--backends sqlite,redis]

Each server runs in a process of its own (`--serve VARIANT`), the load generator in another
(wrk when installed, else an aiohttp client: `--loadgen`). The "bare" server answers a constant
JSON string; the others run the real app (real Resolver, real storage, fake YouTube in the
server process) after one warm-up request has resolved the track, so every measured request is
a cache hit. Target: the real app keeps at least half of the bare handler's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AsyncExitStack

from aiohttp import web

from bot.web import RateLimit, create_app
from core.errors import NotFound
from core.matcher import SpotdlFinder
from core.resolver import Resolver
from core.tracks import TrackInfo
from core.youtube import YouTube
from storage import open_storage
from storage.base import Storage
from storage.crypto import TokenCipher
from tests import netguard
from tests.bench import loadgen
from tests.fakes.youtube import FakeYouTube

TRACK = {
    "id": "4PTG3Z6ehGkBFwjybzWkR8",
    "name": "Never Gonna Give You Up",
    "artistNames": ["Rick Astley"],
    "albumName": "Whenever You Need Somebody",
    "duration": 213573,
    "date": "1987-11-12",
    "trackNumber": 1,
    "trackCount": 10,
    "url": "https://open.spotify.com/track/4PTG3Z6ehGkBFwjybzWkR8",
    "isrc": "GBARL9300135",
    "popularity": 77,
    "albumId": "6XhjNHCyCDyyGJRM5mg40G",
    "artistId": "0gxyHStUsqpMadRV0Di1Qt",
    "albumType": "album",
    "albumArtist": "Rick Astley",
    "coverImg": "https://i.scdn.co/image/ab67616d0000b273baf89eb11ec7c657805d2da0",
}
HEADERS = {"Content-Type": "application/json", "Origin": "https://pwa.example"}
TARGET = 0.5
BARE_ANSWER = '"https://example.invalid/videoplayback?expire=1999999999"'


# --- servers (run in their own process) ----------------------------------------------------


def bare_app() -> web.Application:
    async def song(request: web.Request) -> web.Response:
        return web.Response(text=BARE_ANSWER, content_type="application/json")

    app = web.Application()
    app.router.add_post("/song", song)
    return app


async def real_app(stack: AsyncExitStack, storage_url: str) -> web.Application:
    youtube = await stack.enter_async_context(FakeYouTube())
    youtube.add_video("rickroll001", TRACK["name"], TRACK["artistNames"], 213, isrc=TRACK["isrc"])
    storage = await open_bench_storage(stack, storage_url)
    adapter = YouTube(base_url=youtube.base_url)
    finder = SpotdlFinder(
        adapter, loop=asyncio.get_running_loop(), ytmusic_client_factory=youtube.ytmusic_client
    )
    resolver = await stack.enter_async_context(Resolver(storage, finder, adapter, no_spotify))
    # The limiter still runs on every request, but never refuses the load generator.
    unlimited = RateLimit(rate=1e9, burst=1_000_000_000)
    return create_app(storage=storage, resolver=resolver, rate_limit=unlimited)


async def no_spotify(track_id: str) -> TrackInfo:
    raise NotFound("the benchmark sends full track metadata")


async def open_bench_storage(stack: AsyncExitStack, url: str) -> Storage:
    storage = await open_storage(url, TokenCipher.generate())
    stack.push_async_callback(storage.aclose)
    return storage


async def serve(variant: str, port: int, storage_url: str) -> None:
    netguard.install()
    async with AsyncExitStack() as stack:
        app = bare_app() if variant == "bare" else await real_app(stack, storage_url)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        print("READY", flush=True)
        await stopped.wait()


# --- orchestration -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def server(variant: str, storage_url: str = "") -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.http_song", "--serve", variant,
         "--port", str(port), "--storage-url", storage_url],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError(f"{variant} server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    workdir = tempfile.mkdtemp(prefix="gamenight-bench-redis-")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def warm_up(base_url: str, body: bytes) -> str:
    """One request that resolves the track (and fails loudly if the app cannot)."""
    request = urllib.request.Request(f"{base_url}/song", data=body, headers=HEADERS)
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(response.read().decode().replace('"', ""))


def measure(variant: str, storage_url: str, args: argparse.Namespace) -> loadgen.LoadResult:
    body = json.dumps(TRACK).encode()
    with server(variant, storage_url) as base_url:
        warm_up(base_url, body)
        # A short unmeasured run fills connection pools and caches on both sides.
        loadgen.run(
            f"{base_url}/song", body=body, headers=HEADERS,
            concurrency=args.concurrency, seconds=1, tool=args.loadgen,
        )  # fmt: skip
        return loadgen.run(
            f"{base_url}/song", body=body, headers=HEADERS,
            concurrency=args.concurrency, seconds=args.seconds, tool=args.loadgen,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--storage-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.storage_url))
        return

    tool = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "aiohttp")
    print(
        f"POST /song cache hits, {args.concurrency} concurrent clients, {args.seconds:g} s each, "
        f"load generator: {tool}, cpus: {os.cpu_count()}"
    )
    results: dict[str, loadgen.LoadResult] = {"bare handler": measure("bare", "", args)}
    with contextlib.ExitStack() as stack:
        for backend in filter(None, args.backends.split(",")):
            if backend == "sqlite":
                workdir = stack.enter_context(tempfile.TemporaryDirectory())
                url = f"sqlite:///{workdir}/bench.db"
            elif backend == "redis":
                url = stack.enter_context(redis_server())
            else:
                raise SystemExit(f"unknown backend {backend!r}")
            results[f"app, {backend}"] = measure(backend, url, args)

    bare = results["bare handler"].rps
    print(f"{'server':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>6}")
    for name, r in results.items():
        print(
            f"{name:<16} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7d} "
            f"{r.rps / bare:>6.2f}"
        )
    missed = [n for n, r in results.items() if r.rps / bare < TARGET or r.errors]
    print(f"target: >= {TARGET} of the bare handler's throughput, no errors: "
          + ("MET" if not missed else f"MISSED by {', '.join(missed)}"))  # fmt: skip


if __name__ == "__main__":
    main()

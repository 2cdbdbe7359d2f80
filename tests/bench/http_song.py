"""Benchmark: cache-hit `POST /song` against a bare aiohttp handler, in the same run.

    python -m tests.bench.http_song [--seconds 5] [--rounds 3] [--concurrency 64]
                                    [--backends sqlite,redis] [--loadgen auto|wrk|aiohttp]
                                    [--no-front-cache] [--bodies N]

Each server runs in a process of its own (`--serve VARIANT`), the load generator in another
(wrk when installed, else an aiohttp client). The "bare" server answers a constant JSON string;
the others run the real app as the composition root builds it (create_app over build_resolver,
real storage: SQLite in a temporary directory, or a private redis-server (tests/redis_proc); the
fake YouTube in the server process) after one warm-up request has resolved the track, so every
measured request is a cache hit. Every server uses the production GIL switch interval.

All servers start first; then each round loads each of them in turn (rotating the order), so
a burst of load from elsewhere on a shared machine hits one round, not one server. A server's
ratio is the median over rounds of its throughput divided by the bare handler's in the same
round; req/s, p50 and p99 are from its median round. Target: the real app keeps at least 0.6
of the bare handler's throughput, for both backends, without errors. Every answer is a signed
relay URL (the default), as production answers.

`--bodies N` sends N different bodies in turn (the same track, an ignored field differing): with
N above the parsed-body cache's 1,024 entries every request parses its body again, as when many
different clients ask; the default, 1, is one PWA build asking again and again. Report both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import AsyncExitStack

from aiohttp import web

from bot.__main__ import SWITCH_INTERVAL_S
from bot.web import RateLimit, create_app
from core.errors import NotFound
from core.resolver import ResolverConfig
from core.resolver_factory import build_resolver
from core.tracks import TrackInfo
from storage import open_storage
from storage.base import Storage
from storage.crypto import TokenCipher
from tests import netguard, redis_proc
from tests.bench import loadgen
from tests.fakes.youtube import FakeYouTube
from tests.pwa import track_body
from tests.redis_proc import free_port

TRACK = track_body()
HEADERS = {"Content-Type": "application/json", "Origin": "https://pwa.example"}
TARGET = 0.6
BARE_ANSWER = '"https://example.invalid/videoplayback?expire=1999999999"'


# --- servers (run in their own process) ----------------------------------------------------


def bare_app() -> web.Application:
    async def song(request: web.Request) -> web.Response:
        return web.Response(text=BARE_ANSWER, content_type="application/json")

    app = web.Application()
    app.router.add_post("/song", song)
    return app


async def real_app(stack: AsyncExitStack, storage_url: str, front: bool) -> web.Application:
    youtube = await stack.enter_async_context(FakeYouTube())
    youtube.add_video("rickroll001", TRACK["name"], TRACK["artistNames"], 213, isrc=TRACK["isrc"])
    storage = await open_bench_storage(stack, storage_url)
    resolver = build_resolver(
        storage,
        spotify_metadata,
        youtube_base_url=youtube.base_url,
        ytmusic_client_factory=youtube.ytmusic_client,
        config=None if front else ResolverConfig(front_entries=0),
    )
    await stack.enter_async_context(resolver)
    # The limiter still runs on every request, but never refuses the load generator.
    unlimited = RateLimit(rate=1e9, burst=1_000_000_000)
    return create_app(storage=storage, resolver=resolver, rate_limit=unlimited)


async def spotify_metadata(track_id: str) -> TrackInfo:
    """Spotify's own metadata of the track (the resolver asks once, on the warm-up's miss)."""
    if track_id != TRACK["id"]:
        raise NotFound("Spotify could not find that track.")
    return TrackInfo(
        id=track_id,
        name=TRACK["name"],
        artists=tuple(TRACK["artistNames"]),
        album=TRACK["albumName"],
        duration_ms=TRACK["duration"],
        isrc=TRACK["isrc"],
    )


async def open_bench_storage(stack: AsyncExitStack, url: str) -> Storage:
    storage = await open_storage(url, TokenCipher.generate())
    stack.push_async_callback(storage.aclose)
    return storage


async def serve(variant: str, port: int, storage_url: str, front: bool) -> None:
    netguard.install()
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as `python -m bot` runs
    async with AsyncExitStack() as stack:
        app = bare_app() if variant == "bare" else await real_app(stack, storage_url, front)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        print("READY", flush=True)
        await stopped.wait()


# --- orchestration -------------------------------------------------------------------------


@contextlib.contextmanager
def server(variant: str, storage_url: str = "", front: bool = True) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.http_song", "--serve", variant,
         "--port", str(port), "--storage-url", storage_url,
         "--front-cache" if front else "--no-front-cache"],
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


def warm_up(base_url: str, body: bytes) -> str:
    """One request that resolves the track (and fails loudly if the app cannot)."""
    request = urllib.request.Request(f"{base_url}/song", data=body, headers=HEADERS)
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(response.read().decode().replace('"', ""))


def prime(base_url: str, body: bytes, args: argparse.Namespace) -> None:
    """Resolve the track, then a short unmeasured run fills connection pools and caches."""
    warm_up(base_url, body)
    loadgen.run(
        f"{base_url}/song", body=body, headers=HEADERS,
        concurrency=args.concurrency, seconds=1, tool=args.loadgen,
    )  # fmt: skip


def cache_counts(base_url: str) -> str:
    """The app's own hit/miss counters, to show the measured requests were cache hits."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = dict(re.findall(r"^gamenight_stream_cache_(hits|misses)(?:_total)? (\S+)$", text, re.M))
    hits, misses = (float(found.get(k, "nan")) for k in ("hits", "misses"))
    return f"hits {hits:.0f}, misses {misses:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument(
        "--front-cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the resolver's in-process front cache (off: every hit reads storage)",
    )
    parser.add_argument(
        "--bodies", type=int, default=1, help="different request bodies sent in turn"
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--storage-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.storage_url, args.front_cache))
        return

    args.loadgen = (
        args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "aiohttp")
    )
    print(
        f"POST /song cache hits, {args.concurrency} concurrent clients, {args.seconds:g} s x "
        f"{args.rounds} rounds per server, load generator: {args.loadgen}, cpus: {os.cpu_count()}, "
        f"front cache: {'on' if args.front_cache else 'off'}, bodies: {args.bodies}"
    )
    body = json.dumps(TRACK).encode()
    # Differ only in a field the server ignores: every one is still a hit for the same track.
    bodies = [json.dumps({**TRACK, "requestNo": n}).encode() for n in range(args.bodies)]
    with contextlib.ExitStack() as stack:
        servers = {"bare handler": stack.enter_context(server("bare"))}
        for backend in filter(None, args.backends.split(",")):
            if backend == "sqlite":
                workdir = stack.enter_context(tempfile.TemporaryDirectory())
                url = f"sqlite:///{workdir}/bench.db"
            elif backend == "redis":
                if not redis_proc.redis_installed():
                    raise SystemExit(redis_proc.NOT_INSTALLED)
                url, _ = stack.enter_context(redis_proc.redis_server())
            else:
                raise SystemExit(f"unknown backend {backend!r}")
            servers[f"app, {backend}"] = stack.enter_context(server(backend, url, args.front_cache))
        for base_url in servers.values():
            prime(base_url, body, args)

        rounds: list[dict[str, loadgen.LoadResult]] = []
        names = list(servers)
        for n in range(args.rounds):
            measured: dict[str, loadgen.LoadResult] = {}
            for name in names[n % len(names) :] + names[: n % len(names)]:
                measured[name] = loadgen.run(
                    f"{servers[name]}/song", body=bodies, headers=HEADERS,
                    concurrency=args.concurrency, seconds=args.seconds, tool=args.loadgen,
                )  # fmt: skip
            rounds.append(measured)
            print(f"round {n + 1}: " + ", ".join(f"{k} {measured[k].rps:.0f} req/s" for k in names))
        for name in names[1:]:
            print(f"{name}: {cache_counts(servers[name])}")

    print(f"{'server':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>6}")
    ratios: dict[str, float] = {}
    for name in names:
        ratio = statistics.median(r[name].rps / r["bare handler"].rps for r in rounds)
        ratios[name] = ratio
        median = sorted((r[name] for r in rounds), key=lambda x: x.rps)[len(rounds) // 2]
        errors = sum(r[name].errors for r in rounds)
        print(
            f"{name:<16} {median.rps:>9.0f} {median.p50_ms:>8.2f} {median.p99_ms:>8.2f} "
            f"{errors:>7d} {ratio:>6.2f}"
        )
    apps = {n: ratios[n] for n in names[1:]}
    detail = ", ".join(f"{n.removeprefix('app, ')} {v:.2f}" for n, v in apps.items())
    print(f"cache-hit ratio vs bare: {min(apps.values()):.2f} ({detail})")
    missed = [n for n in names if ratios[n] < TARGET or any(r[n].errors for r in rounds)]
    print(f"target: >= {TARGET} of the bare handler's throughput, no errors: "
          + ("MET" if not missed else f"MISSED by {', '.join(missed)}"))  # fmt: skip


if __name__ == "__main__":
    main()

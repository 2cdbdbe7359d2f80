"""Benchmark: 100 listeners streaming one track through the audio relay vs a bare file response.

    python -m tests.bench.relay [--listeners 100] [--size-mb 16] [--rounds 7]

Three server processes: an "upstream" serving the audio file (googlevideo's stand-in), the
real app (create_app over build_resolver and SQLite, its cache holding the track's stream URL on
the upstream) answering a signed relay URL, and a bare aiohttp app answering the same bytes with
a FileResponse. A fourth process runs the listeners: each GETs the whole track and discards it,
all at once. Rounds alternate relay and bare. Reported per server: aggregate throughput, server
CPU time per listener (the relay's process only; the upstream's is shown apart, since on a real
deployment YouTube pays it), peak RSS during the run against RSS before it.
Target: relay throughput >= 0.5 of the bare response's, in the same run, and flat RSS: at most
1 MB per listener (a couple of chunks, never the track) and no growth from the earlier half of
the rounds to the later half (a leak grows round after round).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.web import RateLimit, create_app
from bot.web.services import RelayConfig
from bot.web.signing import RelaySigner
from bot.web.slots import StreamSlots
from core.errors import NotFound
from core.resolver_factory import build_resolver
from core.tracks import TrackInfo
from storage import open_storage
from storage.crypto import TokenCipher
from storage.records import CachedStream
from tests import netguard
from tests.pwa import TRACK_ID
from tests.redis_proc import free_port

TARGET = 0.5
SECRET = b"relay-benchmark-secret-0123456789"


# --- servers (each in its own process) -----------------------------------------------------


def file_app(path: str, route: str) -> web.Application:
    async def audio(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Content-Type": "audio/webm"})

    app = web.Application()
    app.router.add_get(route, audio)
    return app


async def no_spotify(track_id: str) -> TrackInfo:
    raise NotFound("the benchmark's track is cached")


async def relay_app(
    stack: AsyncExitStack, upstream: str, workdir: str, port: int
) -> web.Application:
    storage = await open_storage(f"sqlite:///{workdir}/relay.db", TokenCipher.generate())
    stack.push_async_callback(storage.aclose)
    now = time.time()
    await storage.put_stream(
        CachedStream(
            track_id=TRACK_ID,
            video_url="https://music.youtube.com/watch?v=benchmark01",
            stream_url=f"{upstream}/videoplayback?expire={int(now) + 86400}",
            expires_at=now + 86400,
            resolved_at=now,
            last_access=now,
            title="benchmark",
            duration_s=240,
        )
    )
    resolver = build_resolver(storage, no_spotify)
    stack.push_async_callback(resolver.aclose)
    signer = RelaySigner(SECRET, f"http://127.0.0.1:{port}")
    return create_app(
        storage=storage,
        resolver=resolver,
        rate_limit=RateLimit(rate=1e9, burst=1_000_000_000),
        # 100 listeners from one address: lift the per-client stream cap for the bench.
        relay=RelayConfig(signer, slots=StreamSlots(per_client=10_000)),
    )


async def serve(variant: str, port: int, target: str) -> None:
    netguard.install()
    async with AsyncExitStack() as stack:
        if variant == "relay":
            workdir = stack.enter_context(tempfile.TemporaryDirectory())
            app = await relay_app(stack, target, workdir, port)
        else:
            app = file_app(target, "/videoplayback" if variant == "upstream" else "/audio")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        print("READY", flush=True)
        await stopped.wait()


@contextlib.contextmanager
def server(variant: str, target: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.relay", "--serve", variant,
         "--port", str(port), "--target", target],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError(f"{variant} server did not start")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


# --- listeners (their own process) ---------------------------------------------------------


async def listen(url: str, listeners: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> int:
            received = 0
            async with http.get(url) as response:
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
                async for chunk in response.content.iter_chunked(256 * 1024):
                    received += len(chunk)
            return received

        started = time.perf_counter()
        sizes = await asyncio.gather(*(one() for _ in range(listeners)))
        return {"bytes": float(sum(sizes)), "seconds": time.perf_counter() - started}


# --- measuring -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(url: str, pids: list[int], listeners: int) -> dict[str, float]:
    """Run the listeners against `url`; CPU of `pids` and peak RSS of the first."""
    cpu_before = [cpu_seconds(p) for p in pids]
    idle_rss = rss_mb(pids[0])
    peak = idle_rss
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.relay", "--fetch", url,
         "--listeners", str(listeners)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    while proc.poll() is None:
        peak = max(peak, rss_mb(pids[0]))
        time.sleep(0.05)
    assert proc.stdout is not None
    result: dict[str, float] = json.loads(proc.stdout.read())
    if proc.returncode:
        raise RuntimeError("the listeners failed")
    cpus = [cpu_seconds(p) - before for p, before in zip(pids, cpu_before, strict=True)]
    return {
        "mb_s": result["bytes"] / result["seconds"] / 1e6,
        "seconds": result["seconds"],
        "cpu_ms_per_listener": cpus[0] / listeners * 1000,
        "upstream_cpu_ms_per_listener": (cpus[1] / listeners * 1000) if len(cpus) > 1 else 0.0,
        "idle_rss": idle_rss,
        "peak_rss": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--size-mb", type=float, default=16.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--fetch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.target))
        return
    if args.fetch:
        print(json.dumps(asyncio.run(listen(args.fetch, args.listeners))))
        return

    print(
        f"{args.listeners} listeners streaming one {args.size_mb:g} MB track at once, "
        f"{args.rounds} rounds, cpus: {os.cpu_count()}"
    )
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory())
        audio = Path(workdir, "track.webm")
        audio.write_bytes(os.urandom(int(args.size_mb * 1e6)))
        upstream, upstream_pid = stack.enter_context(server("upstream", str(audio)))
        relay, relay_pid = stack.enter_context(server("relay", upstream))
        bare, bare_pid = stack.enter_context(server("bare", str(audio)))
        relay_url = RelaySigner(SECRET, relay).url(TRACK_ID)
        runs: dict[str, list[dict[str, float]]] = {"relay": [], "bare file response": []}
        for n in range(args.rounds):
            order = [("relay", relay_url, [relay_pid, upstream_pid])]
            order.append(("bare file response", f"{bare}/audio", [bare_pid]))
            for name, url, pids in order if n % 2 == 0 else order[::-1]:
                result = measure(url, pids, args.listeners)
                runs[name].append(result)
                print(
                    f"round {n + 1}: {name:<18} {result['mb_s']:8.1f} MB/s in "
                    f"{result['seconds']:.2f} s, server CPU {result['cpu_ms_per_listener']:.1f} "
                    f"ms/listener, RSS {result['idle_rss']:.1f} -> peak {result['peak_rss']:.1f} MB"
                )

    def median(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[name]))

    # Paired per round (the two servers ran back to back, under the same outside load); the
    # table's columns are medians of each server on its own, possibly from different rounds,
    # so their quotient is printed too, named, rather than left for the reader to compute.
    per_round = [
        r["mb_s"] / b["mb_s"]
        for r, b in zip(runs["relay"], runs["bare file response"], strict=True)
    ]
    ratio = statistics.median(per_round)
    of_medians = median("relay", "mb_s") / median("bare file response", "mb_s")
    print(f"{'server':<20} {'MB/s':>8} {'CPU ms/listener':>16} {'RSS idle':>9} {'RSS peak':>9}")
    for name in runs:
        print(
            f"{name:<20} {median(name, 'mb_s'):>8.1f} {median(name, 'cpu_ms_per_listener'):>16.1f}"
            f" {median(name, 'idle_rss'):>9.1f} {median(name, 'peak_rss'):>9.1f}"
        )
    print(
        f"upstream (YouTube's stand-in) CPU: "
        f"{median('relay', 'upstream_cpu_ms_per_listener'):.1f} ms/listener"
    )
    first = runs["relay"][0]
    growth = max(r["peak_rss"] for r in runs["relay"]) - first["idle_rss"]
    # Creep: how far the later half's peaks rise above the earlier half's highest (a leak grows
    # round after round and would show here). Not against round 1 alone: how many listeners'
    # buffers overlap in the first round, and so its peak, varies by tens of MB from run to run,
    # and the allocator keeps what the highest round took.
    half = max(1, len(runs["relay"]) // 2)
    earlier = max(r["peak_rss"] for r in runs["relay"][:half])
    later = max((r["peak_rss"] for r in runs["relay"][half:]), default=earlier) - earlier
    per_listener = growth / args.listeners
    rounds = ", ".join(f"{x:.2f}" for x in per_round)
    print(
        f"relay throughput ratio vs bare: {ratio:.2f} (median of the per-round ratios "
        f"{rounds}; the table's medians give {of_medians:.2f})"
    )
    print(
        f"relay RSS: +{growth:.1f} MB over all rounds ({per_listener:.2f} MB per listener, "
        f"the track is {args.size_mb:g} MB); "
        f"later half's peak vs the earlier half's: {later:+.1f} MB"
    )
    # Flat: each listener costs a bounded buffer (a couple of chunks), never the track, and
    # memory does not keep growing from one round to the next.
    met = ratio >= TARGET and per_listener <= 1.0 and later <= 5.0
    print(f"target: >= {TARGET} of the bare response's throughput, flat RSS: "
          + ("MET" if met else "MISSED"))  # fmt: skip


if __name__ == "__main__":
    main()

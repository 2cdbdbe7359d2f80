"""Benchmark: CPU instructions per cache-hit `POST /song`, the real app against a bare handler.

    python -m tests.bench.song_cost [--requests 4000] [--concurrency 64]
                                    [--variants bare,sqlite] [--bodies 1]

Wall-clock throughput (tests/bench/http_song.py) moves with whatever else the machine runs;
an instruction count does not. Each server of http_song (`--serve VARIANT`) runs under
valgrind's callgrind with instrumentation off while it starts and a warm-up request resolves
the track; then it is switched on, an asyncio client in this process (not measured) keeps
`concurrency` keep-alive connections busy until `requests` answers came back, and the
server's instruction count is read. The difference of two such counts (N and 2N requests)
divided by N is the cost of one request, start-up and switch-on noise cancelled.

The ratio bare/app of instructions per request predicts the throughput ratio http_song
measures on a quiet machine (both are CPU-bound in one process), minus the kernel's share,
which callgrind does not see and which is the same for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests import redis_proc
from tests.bench.http_song import HEADERS, TRACK
from tests.redis_proc import free_port


async def _client(port: int, bodies: list[bytes], total: int, concurrency: int) -> None:
    """`total` requests over `concurrency` keep-alive connections; every answer must be 200."""
    heads = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    requests = [
        (
            f"POST /song HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{heads}"
            f"Content-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    ]
    left = total

    async def connection() -> None:
        nonlocal left
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while left > 0:
            left -= 1
            writer.write(requests[n % len(requests)])
            n += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            answer = await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"{status}: {answer!r}")
        writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))


def _control(pid: int, *args: str) -> str:
    return subprocess.run(
        ["callgrind_control", *args, str(pid)], check=True, capture_output=True, text=True
    ).stdout


def _instructions(out_file: Path) -> int:
    """Total Ir over every dump callgrind wrote for the server."""
    total = 0
    for part in out_file.parent.glob(out_file.name + "*"):
        found = re.search(r"^(?:summary|totals): (\d+)", part.read_text(errors="replace"), re.M)
        total += int(found.group(1)) if found else 0
    return total


def measure(
    variant: str, storage_url: str, counts: list[int], args: argparse.Namespace
) -> list[int]:
    """Instructions the server spent on each batch of `counts` requests (one server)."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp())
    out = workdir / "callgrind.out"
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         sys.executable, "-m", "tests.bench.http_song", "--serve", variant,
         "--port", str(port), "--storage-url", storage_url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    body = json.dumps(TRACK).encode()
    bodies = [json.dumps({**TRACK, "requestNo": n}).encode() for n in range(args.bodies)]
    results = []
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError(f"{variant} server did not start")
        asyncio.run(_client(port, [body], 50, 1))  # resolve the track, fill pools and caches
        asyncio.run(_client(port, bodies, 200, args.concurrency))
        for count in counts:
            _control(proc.pid, "--instr=on")
            _control(proc.pid, "--zero")
            asyncio.run(_client(port, bodies, count, args.concurrency))
            _control(proc.pid, "--dump")
            _control(proc.pid, "--instr=off")
            time.sleep(0.5)
            results.append(_instructions(out))
            if args.keep:
                for part in workdir.glob("callgrind.out*"):
                    shutil.copy(part, Path(args.keep) / f"{variant}.{count}.{part.name}")
            for part in workdir.glob("callgrind.out*"):
                part.unlink()
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--variants", default="bare,sqlite")
    parser.add_argument("--bodies", type=int, default=1)
    parser.add_argument("--keep", help="a folder for the callgrind profiles (callgrind_annotate)")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    n = args.requests
    print(f"POST /song cache hits under callgrind: {n} and {2 * n} requests per server, "
          f"{args.concurrency} connections, bodies: {args.bodies}")  # fmt: skip
    per_request: dict[str, float] = {}
    for variant in filter(None, args.variants.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            if variant == "redis":
                with redis_proc.redis_server() as (url, _):
                    small, large = measure(variant, url, [n, 2 * n], args)
            else:
                url = f"sqlite:///{tmp}/bench.db" if variant == "sqlite" else ""
                small, large = measure(variant, url, [n, 2 * n], args)
        per_request[variant] = (large - small) / n
        print(f"{variant:<8} {per_request[variant]:>10,.0f} instructions per request")
    if "bare" in per_request:
        for variant, cost in per_request.items():
            if variant != "bare":
                print(f"{variant}: bare/app instructions ratio {per_request['bare'] / cost:.2f}")


if __name__ == "__main__":
    main()

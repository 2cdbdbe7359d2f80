"""HTTP load generators for the benchmarks: wrk when installed, else an aiohttp client.

Both run in their own process (wrk is one; the aiohttp one is `python -m tests.bench.loadgen`)
so the server under test never shares a CPU-bound process with its load.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int  # non-2xx answers and failed requests
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def run(
    url: str,
    *,
    body: bytes | Sequence[bytes],
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    tool: str,
) -> LoadResult:
    """POST `body` to `url` from `concurrency` connections for `seconds`; several bodies are
    sent in turn."""
    bodies = [body] if isinstance(body, bytes) else list(body)
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "aiohttp"
    if tool == "wrk":
        return _wrk(url, bodies, headers, concurrency, seconds)
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as spec:
        texts = [b.decode() for b in bodies]
        spec.write(json.dumps({"bodies": texts, "headers": headers}).encode())
        spec.flush()
        out = subprocess.run(
            [sys.executable, "-m", "tests.bench.loadgen", url, spec.name,
             "--concurrency", str(concurrency), "--seconds", str(seconds)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    return LoadResult(**json.loads(out.stdout))


# --- wrk -----------------------------------------------------------------------------------


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _wrk(
    url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int, seconds: float
) -> LoadResult:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(bodies[0].decode())}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    if len(bodies) > 1:
        listed = ", ".join(_lua_string(b.decode()) for b in bodies)
        lines += [
            f"bodies = {{{listed}}}",
            "n = 0",
            "request = function()",
            "  n = n + 1",
            "  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])",
            "end",
        ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write("\n".join(lines) + "\n")
        script.flush()
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
             "-s", script.name, url],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    requests = int(_find(r"(\d+) requests in ([\d.]+)(m?s)", out)[0])
    duration, unit = _find(r"\d+ requests in ([\d.]+)(m?s)", out)
    errors = int(_find(r"Non-2xx or 3xx responses: (\d+)", out, "0")[0])
    for kind in ("connect", "read", "write", "timeout"):
        errors += int(_find(rf"{kind} (\d+)", out, "0")[0])
    return LoadResult(
        requests=requests,
        errors=errors,
        seconds=float(duration) / (1000 if unit == "ms" else 1),
        p50_ms=_wrk_ms(_find(r"50%\s+([\d.]+\w+)", out)[0]),
        p99_ms=_wrk_ms(_find(r"99%\s+([\d.]+\w+)", out)[0]),
    )


def _find(pattern: str, text: str, default: str | None = None) -> tuple[str, ...]:
    match = re.search(pattern, text)
    if match is None:
        if default is None:
            raise RuntimeError(f"wrk output lacks {pattern!r}:\n{text}")
        return (default,)
    return match.groups()


def _wrk_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


# --- aiohttp client ------------------------------------------------------------------------


async def _aiohttp_load(
    url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int, seconds: float
) -> LoadResult:
    turn = itertools.cycle(bodies)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(deadline: float) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    data = next(turn)
                    async with session.post(url, data=data, headers=headers) as response:
                        await response.read()
                        ok = response.status < 300
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return LoadResult(len(latencies), errors, elapsed, cuts[49] * 1000, cuts[98] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description="aiohttp load generator (one process)")
    parser.add_argument("url")
    parser.add_argument("spec", type=Path, help="JSON file: {bodies, headers}")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    result = asyncio.run(
        _aiohttp_load(
            args.url,
            [b.encode() for b in spec["bodies"]],
            spec["headers"],
            args.concurrency,
            args.seconds,
        )
    )
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()

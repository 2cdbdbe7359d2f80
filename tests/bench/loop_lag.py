"""50 distinct cold tracks at once: event-loop lag (p50/p99/max) while they resolve.

A ticker task asks to wake every 5 ms and records how late it woke up; blocking work on the
loop would show up as lag, and so does the GIL: spotDL's ranking and yt-dlp's page parsing are
CPU work in the worker threads, and with the default 5 ms switch interval the loop thread can
wait several intervals for the GIL. The run is repeated with `sys.setswitchinterval(0.001)`,
the setting recommended for the application's start-up. Target: p99 below 20 ms.

Run: python -m tests.bench.loop_lag [--storage sqlite|redis]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from tests.bench.resolver_setup import bench_track, parse_storage, resolver_stack

TRACKS = 50
TICK = 0.005


async def ticker(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(TICK)
        samples.append(time.perf_counter() - before - TICK)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(switch_interval: float, storage: str) -> None:
    sys.setswitchinterval(switch_interval)
    async with resolver_stack(
        tracks=TRACKS, storage=storage, search_delay=0.05, page_delay=0.05
    ) as stack:
        samples: list[float] = []
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(samples, stop))
        started = time.perf_counter()
        results = await asyncio.gather(
            *(stack.resolver.resolve(bench_track(i)) for i in range(TRACKS)),
            return_exceptions=True,
        )
        elapsed = time.perf_counter() - started
        stop.set()
        await tick
    failed = [r for r in results if isinstance(r, BaseException)]
    wrong = [
        r for i, r in enumerate(results)
        if not isinstance(r, BaseException) and not r.video_url.endswith(f"song{i:07d}")
    ]  # fmt: skip
    lag_ms = [s * 1000 for s in samples]
    stats = stack.resolver.stats
    p99 = percentile(lag_ms, 99)
    workers = stack.resolver.config.workers
    print(f"{TRACKS} distinct cold tracks at once, {workers} workers, switch interval "
          f"{switch_interval * 1000:g} ms (fake YouTube, 50 ms/search+page, "
          f"{storage} storage)")  # fmt: skip
    print(f"  resolved / failed / wrong video: {TRACKS - len(failed)} / {len(failed)} / "
          f"{len(wrong)}")  # fmt: skip
    print(f"  searches / extractions         : {stats.searches} / {stats.extractions}")
    print(f"  wall time                      : {elapsed * 1000:.0f} ms")
    print(f"  loop lag samples               : {len(lag_ms)}")
    print(f"  loop lag p50 / p99 / max       : {statistics.median(lag_ms):.2f} / {p99:.2f} / "
          f"{max(lag_ms):.2f} ms")  # fmt: skip
    print("  p99 < 20 ms                    :", "OK" if p99 < 20 else "MISSED")


async def main(storage: str) -> None:
    default = sys.getswitchinterval()
    await run(default, storage)
    await run(0.001, storage)
    sys.setswitchinterval(default)


if __name__ == "__main__":
    asyncio.run(main(parse_storage(__doc__)))

"""200 concurrent cold requests for one track: one search, one extraction, total time.

Run: python -m tests.bench.single_flight [--storage sqlite|redis]
"""

from __future__ import annotations

import asyncio
import time

from tests.bench.resolver_setup import bench_track, parse_storage, resolver_stack

REQUESTS = 200


async def main(storage: str) -> None:
    # 50 ms per search and per page: a modest stand-in for YouTube's latency.
    async with resolver_stack(
        tracks=1, storage=storage, search_delay=0.05, page_delay=0.05
    ) as stack:
        track = bench_track(0)
        started = time.perf_counter()
        entries = await asyncio.gather(*(stack.resolver.resolve(track) for _ in range(REQUESTS)))
        cold = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(*(stack.resolver.resolve(track) for _ in range(REQUESTS)))
        warm = time.perf_counter() - started
        stats = stack.resolver.stats
        counts = stack.fake.counts
        print(
            f"{REQUESTS} concurrent cold requests for one track (fake YouTube, 50 ms/search+page, "
            f"{storage} storage)"
        )
        print(f"  distinct stream URLs returned : {len({e.stream_url for e in entries})}")
        print(f"  resolver searches/extractions : {stats.searches} / {stats.extractions}")
        print(
            f"  fake YTM searches/page fetches: {counts.ytmusic_searches} / {counts.page_fetches}"
        )
        print(f"  requests coalesced            : {stats.coalesced}")
        print(f"  total time, cold              : {cold * 1000:.1f} ms")
        print(f"  total time, {REQUESTS} hits after   : {warm * 1000:.1f} ms")
        ok = stats.searches == 1 and stats.extractions == 1 and counts.page_fetches == 1
        print("  single-flight                 :", "OK" if ok else "VIOLATED")


if __name__ == "__main__":
    asyncio.run(main(parse_storage(__doc__)))

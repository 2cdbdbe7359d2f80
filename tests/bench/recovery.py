"""Recovery after a Spotify command outage: how soon every listener is back once it ends.

One session, five listeners, the engine with its default settings against the fake Spotify
(real client stack, real SQLite). Every play command answers 503 for `--outage` seconds while
the host moves to the next track; the figure is the time from the outage's end until every
listener plays the host's track in sync (within 300 ms).

    .venv/bin/python -m tests.bench.recovery [--outage 30] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time

import aiohttp

from core.spotify import SpotifyClient
from core.sync.engine import EngineConfig
from storage import TokenCipher, open_storage
from tests.fakes.spotify import FakeSpotify
from tests.sync.conftest import spotify_config
from tests.sync.rig import Rig

GUILD, HOST = 1, 100
LISTENERS = tuple(range(101, 106))


async def one_run(outage_s: float) -> float:
    with tempfile.TemporaryDirectory() as folder:
        async with FakeSpotify() as fake, aiohttp.ClientSession() as http:
            fake.set_latency(0.03, jitter=0.01)
            fake.lag.read_lag = 0.3
            # A host and five listeners are six users: an app beyond development mode's
            # allowlist of five (README, *Spotify quota*), as the seven-listener test runs.
            fake.devmode.enforce_allowlist = False
            store = await open_storage(f"sqlite:///{folder}/bench.db", TokenCipher.generate())
            client = SpotifyClient(spotify_config(fake), store, http)
            rig = Rig(fake, store, client, EngineConfig())
            try:
                await rig.link(HOST, "host")
                for uid in LISTENERS:
                    await rig.link(uid, f"l{uid}")
                await rig.session(GUILD, HOST, LISTENERS)
                queue = [t.id for t in fake.catalog[:4]]
                host = rig.player(HOST)
                host.load(queue, position_ms=10_000)
                await rig.engine(GUILD).start()
                await wait(lambda: all(rig.in_sync(HOST, u) for u in LISTENERS), 15)
                outage = fake.fail(503, path="/v1/me/player/play", times=None)
                host.next()
                # Ends at a random moment between two probes: an outage exactly as long as
                # a whole number of probe intervals ends right at a probe, every run (0.15 s).
                await asyncio.sleep(outage_s + random.random())
                fake.faults.remove(outage)
                ended = time.monotonic()
                await wait(lambda: all(rig.in_sync(HOST, u) for u in LISTENERS), 60)
                return time.monotonic() - ended
            finally:
                await asyncio.gather(*(e.aclose() for e in rig.engines))
                await fake.stop()
                await client.aclose()
                await store.aclose()


async def wait(check: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("listeners did not get back in sync")
        await asyncio.sleep(0.01)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    times = [await one_run(args.outage) for _ in range(args.runs)]
    print(f"outage: {args.outage:.0f} s of 503 on every play, 5 listeners, {args.runs} run(s)")
    print("recovery after outage ends: " + ", ".join(f"{t:.2f} s" for t in times))
    print(f"recovery after a {args.outage:.0f} s outage: max {max(times):.2f} s, "
          f"median {statistics.median(times):.2f} s")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())

"""Hand-over of game nights between bot processes on one Redis: `kill -9` and SIGTERM.

    python -m tests.bench.handover [--runs 5] [--lease-ttl 1.5] [--poll 0.5]

Two real shard processes (`python -m bot`, DISCORD_SHARD_COUNT=2) against the sharded fake
Discord, a fake Spotify (one port per process, so every command names its sender) and a
private redis-server, with one game night in a guild of each shard (tests/scale/cluster.py).
First shard 1 is stopped so that one process holds both game nights; then each run:

1. after a random pause (0 to SYNC_LEASE_TTL, so that the runs fall at every point of the
   loops' lease renewals and retries), both hosts skip to a new track and the process holding
   both game nights gets `kill -9`; the time until the other process has commanded both
   listeners to play the new tracks is the kill -9 hand-over;
2. the killed one is started again (a new process on its shard) and, once it runs and after
   another random pause, the holder gets SIGTERM and, once it logs that it is shutting down,
   both hosts skip: the time from the signal until the new process commanded both listeners
   is the SIGTERM hand-over; the stopped one is started again for the next run.

It also counts the commands sent by the wrong process: any command for a listener from a
process after another process had taken that listener's game night over (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import tempfile
import time
from itertools import count
from pathlib import Path

from tests.redis_proc import redis_server
from tests.scale.cluster import Cluster, Proc


async def measure(runs: int, lease_ttl: float, poll: float) -> None:
    settings = {
        "SYNC_LEASE_TTL": str(lease_ttl),
        "SYNC_POLL_INTERVAL": str(poll),
        "HOST_IDLE_TIMEOUT": "0",
    }
    with redis_server() as (redis_url, _), tempfile.TemporaryDirectory() as folder:
        async with Cluster.open(redis_url, Path(folder), **settings) as c:
            generation = count()

            async def launch(shard: int) -> Proc:
                proc = await c.start(f"shard{shard}-{next(generation)}", shard=shard)
                await c.ready(proc, within=90)
                return proc

            procs = [await launch(0), await launch(1)]
            hosts = [await c.player(f"host{i}", i) for i in (0, 1)]
            fans = [await c.player(f"fan{i}", i) for i in (0, 1)]
            tracks = iter([t.id for t in c.spotify.catalog] * 10)
            started = time.monotonic()
            first = [next(tracks), next(tracks)]
            for i in (0, 1):
                c.spotify.player(f"host{i}").load([first[i]], position_ms=20_000)
            await c.publish_commands()
            for i in (0, 1):
                await c.command("gamenight start", hosts[i], i)
                await c.command("gamenight join", fans[i], i)
                await c.first_play(f"fan{i}", first[i], after=started, within=30)

            async def hand_over(holder: Proc, how: signal.Signals) -> float:
                """Stop `holder` with `how` and skip on both hosts; seconds from the signal
                until both fans were commanded by another process."""
                # A random moment: the caller starts right after a log line, which would put
                # every run at the same point of the loops' lease renewals and retries (every
                # TTL/3) and measure one phase only instead of the spread up to the worst.
                await asyncio.sleep(random.uniform(0, lease_ttl))
                new = [next(tracks), next(tracks)]
                at = time.monotonic()
                if how == signal.SIGKILL:
                    # No await between the skips and the kill: the holder runs no more code.
                    for i in (0, 1):
                        c.spotify.player(f"host{i}").load([new[i]])
                    os.kill(holder.pid, how)
                else:
                    # Skip only once it is stopping: before, its in-flight polls could see the
                    # new tracks and command the fans themselves.
                    os.kill(holder.pid, how)
                    await c.wait_log(holder, "shutting down", within=10)
                    for i in (0, 1):
                        c.spotify.player(f"host{i}").load([new[i]])
                took = [await c.first_play(f"fan{i}", new[i], after=at, within=60) for i in (0, 1)]
                assert holder.name not in {c.sender(r) for r in took}
                await holder.process.wait()
                return max(r.received_at for r in took) - at

            # Shard 1 stops: from now on one process holds both game nights.
            holder, other = procs
            await hand_over(other, signal.SIGTERM)
            other = await launch(1)
            await c.wait_log(other, "sync loop(s) for sessions found in storage", within=30)

            kills: list[float] = []
            terms: list[float] = []
            for run in range(1, runs + 1):
                kills.append(await hand_over(holder, signal.SIGKILL))
                holder, other = other, await launch(holder.shard or 0)
                await c.wait_log(other, "sync loop(s) for sessions found in storage", within=30)
                terms.append(await hand_over(holder, signal.SIGTERM))
                holder, other = other, await launch(holder.shard or 0)
                await c.wait_log(other, "sync loop(s) for sessions found in storage", within=30)
                print(f"run {run}: kill -9 {kills[-1]:.2f} s, SIGTERM {terms[-1]:.2f} s")

            wrong = sum(len(c.wrong_process_commands(f"fan{i}")) for i in (0, 1))
            by_process = c.commands_by_process(["fan0", "fan1"])
            print(
                f"hand-over after SIGTERM: {max(terms):.2f} s worst, "
                f"{statistics.median(terms):.2f} s median (target <= 1 s)"
            )
            print(f"kill -9: {statistics.median(kills):.2f} s median (target <= 3 s), worst:")
            print(f"hand-over after kill -9: {max(kills):.2f} s")
            print(f"commands sent by the wrong process: {wrong}")
            print(f"listener commands by process: {by_process}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lease-ttl", type=float, default=1.5, help="SYNC_LEASE_TTL, seconds")
    parser.add_argument("--poll", type=float, default=0.5, help="SYNC_POLL_INTERVAL, seconds")
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"hand-over between 2 shard processes on one Redis, SYNC_LEASE_TTL={args.lease_ttl} s, "
        f"SYNC_POLL_INTERVAL={args.poll} s, {args.runs} runs, cpus: {os.cpu_count()}, "
        f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    asyncio.run(measure(args.runs, args.lease_ttl, args.poll))


if __name__ == "__main__":
    main()

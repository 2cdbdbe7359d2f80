"""The original app's sync loop, re-implemented as the benchmarks' baseline row.

It polled the host every 2 s and, when the track id changed, started every listener on the new
track at position 0, one after another. It mirrored nothing else: no pause, resume or seek, no
latency compensation, no end-of-track prediction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence

from core.sync.planner import Play
from core.sync.ports import PlayerClient, observation
from core.sync.state import PlayerState

INTERVAL_S = 2.0


def decide(last_track_id: str | None, host: PlayerState) -> Play | None:
    """The baseline's whole policy: a new track starts everyone at zero."""
    if host.track_uri is None or host.track_id == last_track_id:
        return None
    return Play(host.track_uri, 0)


async def run_baseline(
    client: PlayerClient,
    host_id: int,
    listeners: Sequence[int],
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
) -> Counter[str]:
    """Run until `stop` is set; returns the Spotify calls made, by kind."""
    calls: Counter[str] = Counter()
    last: str | None = None
    while not stop.is_set():
        requested = clock()
        calls["host_read"] += 1
        host = observation(await client.playback(host_id), requested, clock())
        action = decide(last, host)
        if action is not None:
            for uid in listeners:  # sequential, as the original did
                calls["play"] += 1
                await client.play(uid, action.track_uri, action.position_ms)
            last = host.track_id
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), INTERVAL_S)
    return calls

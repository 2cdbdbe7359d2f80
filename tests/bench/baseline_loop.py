"""The original Game Night worker, re-implemented as the benchmarks' baseline row.

Faithful to the original (issue #10): it polls the host every 2 s; when the track changes it
plays the new track from 0 on every listener concurrently (asyncio.gather) and, around it,
pauses the host, rewinds it to 0 and resumes it (so everyone starts together: its settled skew
is bought by rewinding the host); a pause is propagated; a resume is propagated by restarting
the track from 0 (the same routine as a change); seeks are not followed. No latency
compensation, no end-of-track prediction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from enum import StrEnum

from core.sync.ports import PlayerClient, observation
from core.sync.state import PlayerState

INTERVAL_S = 2.0


class Step(StrEnum):
    RESTART = "restart"  # everyone (host included) from 0 on the host's track
    PAUSE = "pause"


def decide(last: PlayerState | None, host: PlayerState) -> Step | None:
    """The original's whole policy, from the previous poll and this one."""
    if host.track_id is None:
        return None
    if last is None or host.track_id != last.track_id:
        return Step.RESTART if host.is_playing else None
    if last.is_playing and not host.is_playing:
        return Step.PAUSE
    if host.is_playing and not last.is_playing:
        return Step.RESTART  # resume: the track again from 0
    return None  # a seek is not noticed


async def run_baseline(
    client: PlayerClient,
    host_id: int,
    listeners: Sequence[int],
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
) -> Counter[str]:
    """Run until `stop` is set; returns the Spotify calls made, by kind."""
    calls: Counter[str] = Counter()
    last: PlayerState | None = None

    async def each(kind: str, call: Callable[[int], object]) -> None:
        calls[kind] += len(listeners)
        await asyncio.gather(*(call(uid) for uid in listeners), return_exceptions=True)  # type: ignore[misc]

    while not stop.is_set():
        requested = clock()
        calls["host_read"] += 1
        with contextlib.suppress(Exception):
            host = observation(await client.playback(host_id), requested, clock())
            step = decide(last, host)
            if step is Step.RESTART:
                uri = host.track_uri
                calls.update(["host_pause", "host_seek", "host_resume"])
                with contextlib.suppress(Exception):
                    await client.pause(host_id)
                await each("play", lambda uid: client.play(uid, uri, 0))  # noqa: B023 (awaited here)
                with contextlib.suppress(Exception):
                    await client.seek(host_id, 0)
                    await client.play(host_id, None)
                host = PlayerState(host.track_id, 0, True, clock(), host.duration_ms)
            elif step is Step.PAUSE:
                await each("pause", client.pause)
            last = host
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), INTERVAL_S)
    return calls

"""Shared wiring for the resolver benchmarks: fake YouTube + real spotDL/yt-dlp + a resolver."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from core.resolver import Resolver, ResolverConfig, build_resolver
from core.tracks import TrackInfo
from tests import netguard
from tests.fakes.youtube import FakeYouTube
from tests.resolver.memory_cache import MemoryStreamCache


def bench_track(i: int) -> TrackInfo:
    """A distinct track per index; the fake holds its song plus a wrong-artist decoy."""
    return TrackInfo(f"{i:022d}", f"Nimbus{i} Harbor{i}", (f"Artist{i}",), "", 180_000 + i * 1000)


def stock(fake: FakeYouTube, count: int) -> None:
    for i in range(count):
        t = bench_track(i)
        fake.add_video(f"song{i:07d}", t.name, t.artists, t.duration_ms // 1000)
        fake.add_video(f"deco{i:07d}", t.name, [f"Imitator{i}"], t.duration_ms // 1000)


@dataclass
class Stack:
    fake: FakeYouTube
    resolver: Resolver


@asynccontextmanager
async def resolver_stack(
    tracks: int, workers: int = 4, search_delay: float = 0.0, page_delay: float = 0.0
) -> AsyncIterator[Stack]:
    netguard.install()  # loopback only, like the tests
    with tempfile.TemporaryDirectory(prefix="gamenight-bench-") as home:
        os.environ["HOME"] = home  # spotDL writes ~/.config/spotdl
        async with FakeYouTube(search_delay=search_delay, page_delay=page_delay) as fake:
            stock(fake, tracks)
            by_id = {bench_track(i).id: bench_track(i) for i in range(tracks)}

            async def lookup(track_id: str) -> TrackInfo:
                return by_id[track_id]

            resolver = build_resolver(
                MemoryStreamCache(10_000),
                lookup,
                config=ResolverConfig(workers=workers, timeout_s=120),
                youtube_base_url=fake.base_url,
                ytmusic_client_factory=fake.ytmusic_client,
            )
            await resolver.start()  # warms yt-dlp up, as the application does at start-up
            try:
                yield Stack(fake, resolver)
            finally:
                await resolver.aclose()

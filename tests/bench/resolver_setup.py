"""Shared wiring for the resolver benchmarks: fake YouTube + real spotDL/yt-dlp + real storage."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass

from core.resolver import Resolver, ResolverConfig
from core.resolver_factory import build_resolver
from core.tracks import TrackInfo
from storage import TokenCipher, open_storage
from tests import netguard
from tests.fakes.youtube import FakeYouTube
from tests.redis_proc import redis_server

BACKENDS = ("sqlite", "redis")


def bench_track(i: int) -> TrackInfo:
    """A distinct track per index; the fake holds its song plus a wrong-artist decoy."""
    return TrackInfo(f"{i:022d}", f"Nimbus{i} Harbor{i}", (f"Artist{i}",), "", 180_000 + i * 1000)


def stock(fake: FakeYouTube, count: int) -> None:
    for i in range(count):
        t = bench_track(i)
        fake.add_video(f"song{i:07d}", t.name, t.artists, t.duration_ms // 1000)
        fake.add_video(f"deco{i:07d}", t.name, [f"Imitator{i}"], t.duration_ms // 1000)


def parse_storage(description: str | None) -> str:
    """The `--storage sqlite|redis` option every resolver benchmark takes."""
    parser = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    parser.add_argument("--storage", choices=BACKENDS, default="sqlite")
    backend: str = parser.parse_args().storage
    return backend


@contextmanager
def storage_url(backend: str, workdir: str) -> Iterator[str]:
    """An empty store: a SQLite file in `workdir`, or a private redis-server of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir}/bench.db"
    elif backend == "redis":
        with redis_server() as (url, _):
            yield url
    else:
        raise ValueError(f"unknown storage backend {backend!r}")


@dataclass
class Stack:
    fake: FakeYouTube
    resolver: Resolver


@asynccontextmanager
async def resolver_stack(
    tracks: int,
    storage: str = "sqlite",
    workers: int = 4,
    search_delay: float = 0.0,
    page_delay: float = 0.0,
) -> AsyncIterator[Stack]:
    netguard.install()  # loopback only, like the tests
    async with AsyncExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory(prefix="gamenight-bench-"))
        os.environ["HOME"] = home  # spotDL writes ~/.config/spotdl
        url = stack.enter_context(storage_url(storage, home))
        store = await open_storage(url, TokenCipher.generate(), max_streams=10_000)
        stack.push_async_callback(store.aclose)
        fake = await stack.enter_async_context(
            FakeYouTube(search_delay=search_delay, page_delay=page_delay)
        )
        stock(fake, tracks)
        by_id = {bench_track(i).id: bench_track(i) for i in range(tracks)}

        async def lookup(track_id: str) -> TrackInfo:
            return by_id[track_id]

        # Entering starts it: yt-dlp and spotDL warm up, as the application does at start-up.
        resolver = await stack.enter_async_context(
            build_resolver(
                store,
                lookup,
                config=ResolverConfig(workers=workers, timeout_s=120),
                youtube_base_url=fake.base_url,
                ytmusic_client_factory=fake.ytmusic_client,
            )
        )
        yield Stack(fake, resolver)

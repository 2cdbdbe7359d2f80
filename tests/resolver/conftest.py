"""Resolver test wiring: the fake YouTube, the real spotDL + yt-dlp, real storage, a clock.

The stream cache is real storage: SQLite by default; tests whose behaviour hangs on the cache
(eviction, deferred access writes, single-flight, the refresher) run on Redis too (`BOTH`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.errors import NotFound
from core.matcher import SpotdlFinder
from core.resolver import Resolver, ResolverConfig
from core.tracks import TrackInfo
from core.youtube import YouTube
from storage import Storage, TokenCipher, open_storage
from tests.conftest import storage_url_for
from tests.fakes.youtube import FakeYouTube

# Tracks as Spotify describes them, and what the fake YouTube holds for each.
RICK = TrackInfo(
    "4PTG3Z6ehGkBFwjybzWkR8",
    "Never Gonna Give You Up",
    ("Rick Astley",),
    "Whenever You Need Somebody",
    213_000,
    isrc="GBARL9300135",
)
RICK_VIDEO = "https://music.youtube.com/watch?v=dQw4w9WgXcQ"
AHA = TrackInfo("2WfaOiMkCvy7F5fcp2zZ8L", "Take On Me", ("a-ha",), "Hunting High and Low", 225_000)
AHA_VIDEO = "https://www.youtube.com/watch?v=ahaUpload01"  # only the yt-dlp search finds it
DEMO = TrackInfo("0aaaaaaaaaaaaaaaaaaaaa", "Basement Tapes", ("Garage Trio",), "", 180_000)
DEMO_VIDEO = "https://www.youtube.com/watch?v=demoUpload1"
QUEEN = TrackInfo("4u7EnebtmKWzUH433cf5Qv", "Bohemian Rhapsody", ("Queen",), "", 354_000)
QUEEN_VIDEO = "https://music.youtube.com/watch?v=fJ9rUzIMcZQ"
NOBODY = TrackInfo("1bbbbbbbbbbbbbbbbbbbbb", "Unfindable Song", ("Nobody Knows",), "", 200_000)
TRACKS = {t.id: t for t in (RICK, AHA, DEMO, QUEEN, NOBODY)}


def stock(fake: FakeYouTube) -> None:
    """The catalog: right answers plus decoys spotDL's ranking or our tolerance must reject."""
    fake.add_video(
        "dQw4w9WgXcQ",
        "Never Gonna Give You Up",
        ["Rick Astley"],
        213,
        album="Whenever You Need Somebody",
        isrc="GBARL9300135",
    )
    fake.add_video("rickCover01", "Never Gonna Give You Up", ["Cover Band"], 213)  # wrong artist
    fake.add_video("rickExtnd01", "Never Gonna Give You Up", ["Rick Astley"], 400)  # wrong length
    # YouTube Music only knows an 11 s longer edit: inside spotDL's own time window, outside
    # our tolerance; the right length is a plain upload that only the yt-dlp search finds.
    fake.add_video("ahaEdit0001", "Take On Me", ["a-ha"], 236, album="Hunting High and Low")
    fake.add_video("ahaUpload01", "Take On Me", ["a-ha"], 226, kind="upload")
    fake.add_video("demoUpload1", "Basement Tapes", ["Garage Trio"], 181, kind="upload")
    fake.add_video("fJ9rUzIMcZQ", "Bohemian Rhapsody", ["Queen"], 354, album="A Night at the Opera")


@dataclass
class Clock:
    """Wall time plus an offset the test moves forward."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Lookup:
    """Stands in for SpotifyClient.track: metadata by id, counting calls."""

    calls: list[str] = field(default_factory=list)

    async def __call__(self, track_id: str) -> TrackInfo:
        self.calls.append(track_id)
        try:
            return TRACKS[track_id]
        except KeyError:
            raise NotFound("No such track on Spotify.") from None


@pytest.fixture(autouse=True)
def _spotdl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # spotDL creates ~/.config/spotdl/temp when its providers are built.
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
async def fake_youtube() -> AsyncIterator[FakeYouTube]:
    async with FakeYouTube() as fake:
        stock(fake)
        yield fake


@pytest.fixture
def max_streams() -> int:
    return 100


# Runs a test once per backend: `backend` is parametrized directly, shadowing the fixture.
BOTH = pytest.mark.parametrize("backend", ["sqlite", "redis"])


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
async def cache(
    backend: str, max_streams: int, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Storage]:
    url = storage_url_for(backend, tmp_path, request)
    store = await open_storage(url, TokenCipher.generate(), max_streams=max_streams)
    yield store
    await store.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lookup() -> Lookup:
    return Lookup()


@pytest.fixture
def config() -> ResolverConfig:
    return ResolverConfig(workers=4, timeout_s=20.0)


@pytest.fixture
async def resolver(
    fake_youtube: FakeYouTube,
    cache: Storage,
    clock: Clock,
    lookup: Lookup,
    config: ResolverConfig,
) -> AsyncIterator[Resolver]:
    youtube = YouTube(base_url=fake_youtube.base_url)
    finder = SpotdlFinder(
        youtube,
        loop=asyncio.get_running_loop(),
        ytmusic_client_factory=fake_youtube.ytmusic_client,
    )
    resolver = Resolver(cache, finder, youtube, lookup, config=config, clock=clock)
    yield resolver
    await resolver.aclose()


async def eventually(condition: Callable[[], bool | Awaitable[bool]], within: float = 10) -> None:
    """Wait until `condition` holds (for work the code under test does in the background)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition did not become true in time")
        await asyncio.sleep(0.01)

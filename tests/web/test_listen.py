"""The listen-along core: what counts as a change, tokens, and one shared feed per session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.web.listen import add_listen_routes
from bot.web.ratelimit import RateLimit, RateLimiter
from bot.web.services import LIMITER
from core.errors import NotFound
from core.listen import ListenAlong, ListenConfig, looks_like_token
from core.listen_view import Change, StreamStatus, playback_change
from core.sessions import NoSession
from core.tracks import TrackInfo
from storage import open_storage
from storage.base import Storage
from storage.crypto import TokenCipher
from storage.records import CachedStream, HostSnapshot, Session

A, B = "A" * 22, "B" * 22
T0 = 1_000.0


def snap(track: str | None, pos: int, playing: bool = True, at: float = T0) -> HostSnapshot:
    return HostSnapshot(track, pos, playing, at, 200_000)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, None, None),
        (None, snap(A, 0), Change.TRACK),
        (snap(A, 0), None, Change.TRACK),
        (snap(A, 0), snap(B, 0), Change.TRACK),
        (snap(A, 5_000), snap(A, 6_000, at=T0 + 1), None),  # played on as expected
        (snap(A, 5_000), snap(A, 6_700, at=T0 + 1), None),  # jitter within the threshold
        (snap(A, 5_000), snap(A, 9_000, at=T0 + 1), Change.SEEK),  # forward
        (snap(A, 5_000), snap(A, 1_000, at=T0 + 1), Change.SEEK),  # back
        (snap(A, 5_000), snap(A, 6_000, False, T0 + 1), Change.PAUSE),
        (snap(A, 6_000, False), snap(A, 6_000, True, T0 + 30), Change.RESUME),
        (snap(A, 6_000, False), snap(A, 6_000, False, T0 + 30), None),  # paused stays put
        (snap(A, 6_000, False), snap(A, 20_000, False, T0 + 30), Change.SEEK),
    ],
)
def test_playback_change(
    before: HostSnapshot | None, after: HostSnapshot | None, expected: Change | None
) -> None:
    assert playback_change(before, after, threshold_ms=750) is expected


class Streams:
    """A stream source with a fixed answer per track (the real Resolver runs in the browser
    tests); counts calls to show the feed resolves once for all its subscribers."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def resolve(self, track: TrackInfo, force: bool = False) -> CachedStream:
        return await self.resolve_id(track.id, force)

    async def resolve_id(self, spotify_id: str, force: bool = False) -> CachedStream:
        self.calls.append(spotify_id)
        if spotify_id == B:
            raise NotFound("No video matches this track.")
        now = time.time()
        return CachedStream(
            spotify_id, "v", f"http://127.0.0.1:9/{spotify_id}", now + 3600, now, now
        )


class Tracks:
    async def track(self, track_id: str) -> TrackInfo:
        return TrackInfo(track_id, f"Song {track_id[0]}", ("Artist",))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    storage = await open_storage(f"sqlite:///{tmp_path / 'l.db'}", TokenCipher.generate())
    await storage.create_session(Session(1, 10, created_at=T0))
    yield storage
    await storage.aclose()  # also when a test failed before closing it: an open one hangs pytest


async def test_token_is_made_once_and_ends_with_the_session(store: Storage) -> None:
    listen = ListenAlong(store, Streams(), Tracks())
    token = await listen.token_for(1)
    assert looks_like_token(token)
    assert await listen.token_for(1) == token
    found = await ListenAlong(store, Streams()).find(token)  # another process finds it too
    assert found is not None and found.guild_id == 1
    assert await listen.find("x" * 32) is None
    assert await listen.find("../../etc/passwd") is None
    with pytest.raises(NoSession):
        await listen.token_for(2)
    await store.delete_session(1)
    assert await listen.find(token) is None
    with pytest.raises(NotFound):
        async with listen.subscribe(token):
            pass
    await store.aclose()


async def test_one_feed_per_session_wakes_every_subscriber(store: Storage) -> None:
    streams = Streams()
    counts: list[tuple[int, int]] = []
    listen = ListenAlong(store, streams, Tracks(), config=ListenConfig(poll_interval_s=0.02))
    listen.watch_audience(lambda guild, n: counts.append((guild, n)))
    await store.update_session(1, {"snapshot": snap(A, 1_000, at=time.time())})
    token = await listen.token_for(1)
    async with listen.subscribe(token) as first, listen.subscribe(token) as second:
        assert listen.audience(1) == 2
        view = await first.next(2.0)
        assert view is not None
        while view.stream.status is StreamStatus.RESOLVING:
            view = await first.next(2.0)
            assert view is not None
        assert (view.stream.status, view.track and view.track.name) == (
            StreamStatus.READY, "Song A",
        )  # fmt: skip
        assert view.stream.url == f"http://127.0.0.1:9/{A}"

        await store.update_session(1, {"snapshot": snap(B, 0, at=time.time())})
        for sub in (first, second):
            seen = await sub.next(2.0)
            while seen is not None and seen.change is not Change.STREAM:
                seen = await sub.next(2.0)
            assert seen is not None
            assert seen.stream.status is StreamStatus.FAILED
            assert seen.stream.message == "No video matches this track."
        assert streams.calls == [A, B]  # once per track, not per subscriber

        assert await first.next(0.1) is None  # nothing new: the page sends a beacon instead
        await store.delete_session(1)
        ended = await first.next(2.0)
        assert ended is not None and ended.ended and ended.change is Change.ENDED
    assert listen.audience(1) == 0
    assert counts == [(1, 1), (1, 2), (1, 1), (1, 0)]
    await listen.aclose()
    await store.aclose()


class HeldStreams(Streams):
    """Resolves only once released: the page's view in between can be looked at."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def resolve_id(self, spotify_id: str, force: bool = False) -> CachedStream:
        await self.release.wait()
        return await super().resolve_id(spotify_id, force)


async def test_a_track_change_tells_the_page_the_stream_is_being_found(store: Storage) -> None:
    streams = HeldStreams()
    listen = ListenAlong(store, streams, Tracks(), config=ListenConfig(poll_interval_s=0.02))
    await store.update_session(1, {"snapshot": snap(A, 1_000, at=time.time())})
    token = await listen.token_for(1)
    async with listen.subscribe(token) as sub:
        view = await sub.next(2.0)
        assert view is not None and view.stream.status is StreamStatus.RESOLVING
        streams.release.set()
        while view.stream.status is not StreamStatus.READY:
            view = await sub.next(2.0)
            assert view is not None

        streams.release.clear()
        await store.update_session(1, {"snapshot": snap("C" * 22, 0, at=time.time())})
        view = await sub.next(2.0)
        assert view is not None and view.change is Change.TRACK
        assert (view.stream.status, view.stream.url) == (StreamStatus.RESOLVING, None)
        streams.release.set()
    await listen.aclose()
    await store.aclose()


async def test_an_unknown_link_gets_a_private_404(store: Storage) -> None:
    app = web.Application()
    add_listen_routes(app, ListenAlong(store, Streams(), Tracks()))
    async with TestClient(TestServer(app)) as client:
        for path in (f"/listen/{'x' * 32}", f"/listen/{'x' * 32}/events"):
            response = await client.get(path)
            assert response.status == 404, path
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["Referrer-Policy"] == "no-referrer"
        assert await response.text() == "This listen link has ended."


async def test_head_on_the_event_stream_answers_headers_only(store: Storage) -> None:
    listen = ListenAlong(store, Streams(), Tracks())
    token = await listen.token_for(1)
    app = web.Application()
    add_listen_routes(app, listen)
    async with TestClient(TestServer(app)) as client:
        async with asyncio.timeout(5):  # a streamed body would never end
            response = await client.head(f"/listen/{token}/events")
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert await response.read() == b""
            response = await client.head(f"/listen/{'x' * 32}/events")
            assert response.status == 404


async def test_the_listen_page_is_rate_limited(store: Storage) -> None:
    app = web.Application()
    app[LIMITER] = RateLimiter(RateLimit(rate=0.001, burst=3))
    add_listen_routes(app, ListenAlong(store, Streams(), Tracks()))
    async with TestClient(TestServer(app)) as client:
        statuses = [(await client.get(f"/listen/{'x' * 32}")).status for _ in range(5)]
        assert statuses == [404, 404, 404, 429, 429]
        assert (await client.get(f"/listen/{'x' * 32}/events")).status == 429

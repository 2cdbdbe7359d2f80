"""Pre-resolving playlists into the stream cache (`python -m bot index`, DESIGN §4).

Two steps. `plan()` lists the tracks of the playlists asked for (and of every playlist of the
linked users asked for), de-duplicated, and fails early on bad input: an unknown playlist, a
user who never linked. `run()` then goes through the plan with bounded concurrency. A track
whose cache entry still has a usable stream URL counts as cached without calling the resolver
at all, so an already-indexed track costs one storage read: no search, no extraction, and no
access-time write (indexing is not listening; it must not keep entries alive in the LRU).
Everything else goes through `Resolver.resolve`, which writes each result as it lands, so an
interrupted run loses nothing: the next one counts the finished tracks as cached and carries on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

from core.errors import (
    ExtractionFailed,
    NoMatch,
    NotFound,
    NotLinked,
    Overloaded,
    ResolveTimeout,
    SearchFailed,
    TokenRevoked,
    UserFacingError,
)
from core.resolver import still_usable
from core.spotify.models import PlaylistRef
from core.tracks import TrackInfo
from storage.base import StreamCache
from storage.records import CachedStream

__all__ = [
    "IndexPlan",
    "IndexReport",
    "Indexer",
    "Outcome",
    "PlannedPlaylist",
    "PlaylistSource",
    "Progress",
    "StreamResolver",
    "TrackResult",
    "parse_playlist_id",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_ID = r"[0-9A-Za-z]{22}"
# open.spotify.com/playlist/ID, also with a locale segment (/intl-de/) and a query (?si=...).
_PLAYLIST_URL = re.compile(
    rf"^(?:https?://)?open\.spotify\.com/(?:intl-[\w-]+/)?(?:embed/)?playlist/({_ID})(?:[/?#].*)?$"
)
_PLAYLIST_URI = re.compile(rf"^spotify:playlist:({_ID})$")
_BARE_ID = re.compile(rf"^({_ID})$")


def parse_playlist_id(text: str) -> str:
    """The playlist id in an open.spotify.com URL, a spotify:playlist: URI or a bare id."""
    value = text.strip()
    for pattern in (_PLAYLIST_URL, _PLAYLIST_URI, _BARE_ID):
        if m := pattern.match(value):
            return m[1]
    raise ValueError(
        f"{text!r} is not a Spotify playlist: give an open.spotify.com/playlist/… link, "
        "a spotify:playlist:… URI or the 22-character id"
    )


class PlaylistSource(Protocol):
    """What the indexer needs from Spotify (core.spotify.SpotifyClient)."""

    async def user_playlists(self, discord_user_id: int) -> list[PlaylistRef]: ...

    async def playlist_tracks(
        self, playlist_id: str, discord_user_id: int | None = None
    ) -> list[TrackInfo]: ...


class StreamResolver(Protocol):
    """What the indexer needs from the resolver (core.resolver.Resolver)."""

    async def resolve(self, track: TrackInfo, force: bool = False) -> CachedStream: ...


class Outcome(StrEnum):
    RESOLVED = "resolved"  # searched, matched and extracted
    RENEWED = "renewed"  # the cached video was kept; only its expired stream URL was renewed
    CACHED = "cached"  # already had a usable stream URL: nothing ran
    FAILED = "failed"


@dataclass(frozen=True)
class TrackResult:
    track: TrackInfo
    outcome: Outcome
    reason: str = ""  # why it failed, grouped on in the summary


class Progress(Protocol):
    """Told about a run as it goes (the CLI's progress bar; tests record it)."""

    def started(self, plan: IndexPlan) -> None: ...

    def track_done(self, result: TrackResult) -> None: ...


@dataclass(frozen=True)
class PlannedPlaylist:
    id: str
    name: str
    track_count: int
    owner_user_id: int | None  # whose token read it; None: the app's token (public only)


@dataclass(frozen=True)
class IndexPlan:
    playlists: tuple[PlannedPlaylist, ...]
    tracks: tuple[TrackInfo, ...]  # distinct, in playlist order


@dataclass
class IndexReport:
    plan: IndexPlan
    results: list[TrackResult] = field(default_factory=list)
    interrupted: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def remaining(self) -> int:
        """Planned tracks this run did not get to (only when interrupted)."""
        return len(self.plan.tracks) - len(self.results)

    def failures_by_reason(self) -> dict[str, list[TrackInfo]]:
        """Failed tracks grouped by reason, the most common reason first."""
        groups: dict[str, list[TrackInfo]] = {}
        for r in self.results:
            if r.outcome is Outcome.FAILED:
                groups.setdefault(r.reason, []).append(r.track)
        return dict(sorted(groups.items(), key=lambda item: -len(item[1])))


def failure_reason(exc: BaseException) -> str:
    """A short reason to group failures by (the exceptions' own messages name the track)."""
    match exc:
        case NoMatch():
            return "no matching YouTube video"
        case ExtractionFailed():
            return "YouTube gave no audio stream"
        case SearchFailed():
            return "YouTube search did not answer"
        case ResolveTimeout():
            return "timed out"
        case Overloaded():
            return "resolver overloaded"
        case UserFacingError():
            return exc.message
    return f"unexpected error ({type(exc).__name__})"


class Indexer:
    def __init__(
        self,
        source: PlaylistSource,
        resolver: StreamResolver,
        cache: StreamCache,
        *,
        concurrency: int = 4,
        min_validity_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`min_validity_s`: a cached stream URL with less time left is renewed, not counted
        as cached (pass the resolver's own `config.min_validity_s` so both agree)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._source = source
        self._resolver = resolver
        self._cache = cache
        self._concurrency = concurrency
        self._min_validity_s = min_validity_s
        self._clock = clock

    # --- planning ----------------------------------------------------------------------------

    async def plan(self, playlist_ids: Sequence[str], user_ids: Sequence[int] = ()) -> IndexPlan:
        """List the tracks to index; raise a UserFacingError naming bad input.

        Playlists given by id are read with the app's token (public playlists), every playlist
        of a user with that user's token (their private playlists too).
        """
        wanted: list[tuple[str, str | None, int | None]] = [(p, None, None) for p in playlist_ids]
        for user_id in user_ids:
            try:
                refs = await self._source.user_playlists(user_id)
            except NotLinked:
                raise NotLinked(
                    f"Discord user {user_id} has not linked Spotify: run /link first."
                ) from None
            except TokenRevoked:
                raise TokenRevoked(
                    f"The Spotify link of Discord user {user_id} has expired: run /link again."
                ) from None
            wanted += [(ref.id, ref.name, user_id) for ref in refs]

        # Each playlist once; one also listed under a --user is read with that user's token.
        distinct: dict[str, tuple[str | None, int | None]] = {}
        for playlist_id, name, reader in wanted:
            known = distinct.get(playlist_id)
            if known is None:
                distinct[playlist_id] = (name, reader)
            elif known[1] is None and reader is not None:
                distinct[playlist_id] = (name or known[0], reader)
        # A user may have hundreds of playlists: read a few at a time (the client's limiter
        # keeps the app within Spotify's budget), and keep the order they were asked for.
        gate = asyncio.Semaphore(self._concurrency)

        async def read(playlist_id: str, reader: int | None) -> list[TrackInfo]:
            async with gate:
                return await self._source.playlist_tracks(playlist_id, reader)

        listed = await asyncio.gather(
            *(read(playlist_id, reader) for playlist_id, (_, reader) in distinct.items()),
            return_exceptions=True,
        )
        playlists: list[PlannedPlaylist] = []
        tracks: dict[str, TrackInfo] = {}
        for (playlist_id, (name, reader)), items in zip(distinct.items(), listed, strict=True):
            if isinstance(items, NotFound):
                raise NotFound(
                    f"Spotify has no playlist {playlist_id} that this bot can read "
                    "(private playlists: index them with --user and their owner's Discord id)."
                ) from None
            if isinstance(items, BaseException):
                raise items
            playlists.append(PlannedPlaylist(playlist_id, name or playlist_id, len(items), reader))
            for track in items:
                tracks.setdefault(track.id, track)
        return IndexPlan(tuple(playlists), tuple(tracks.values()))

    # --- running -----------------------------------------------------------------------------

    async def run(
        self,
        plan: IndexPlan,
        progress: Progress | None = None,
        stop: asyncio.Event | None = None,
    ) -> IndexReport:
        """Resolve what the plan holds; when `stop` is set, return early (interrupted=True).

        Tracks already resolved stay cached, so running the same plan again continues.
        """
        report = IndexReport(plan)
        if progress is not None:
            progress.started(plan)
        # On a stop, resolutions keep running inside the resolver (they are shielded); only our
        # waiting stops. What finished is in the cache already. An unexpected error in our own
        # code surfaces here.
        finished, _ = await unless_stopped(
            self._work(iter(plan.tracks), report, progress), stop or asyncio.Event()
        )
        report.interrupted = not finished
        return report

    async def _work(
        self, tracks: Iterator[TrackInfo], report: IndexReport, progress: Progress | None
    ) -> None:
        async def worker() -> None:
            # One shared iterator: each worker takes the next track when it is free.
            for track in tracks:
                result = await self._index(track)
                report.results.append(result)
                if progress is not None:
                    progress.track_done(result)

        async with asyncio.TaskGroup() as group:
            for _ in range(self._concurrency):
                group.create_task(worker())

    async def _index(self, track: TrackInfo) -> TrackResult:
        try:
            cached = await self._cache.get_stream(track.id)
            if cached is not None and still_usable(cached, self._clock(), self._min_validity_s):
                return TrackResult(track, Outcome.CACHED)
            await self._resolver.resolve(track)
        except Exception as exc:
            if not isinstance(exc, UserFacingError):
                log.exception("indexing %s failed", track.id)
            return TrackResult(track, Outcome.FAILED, failure_reason(exc))
        renewed = cached is not None and bool(cached.video_url)
        return TrackResult(track, Outcome.RENEWED if renewed else Outcome.RESOLVED)


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> tuple[bool, T | None]:
    """(True, result) when `work` finished; (False, None) when `stop` was set first, after
    `work` was cancelled. An error raised by `work` is raised here."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, stopping, return_exceptions=True)
    if task.cancelled():
        return False, None
    return True, task.result()


def track_names(tracks: Iterable[TrackInfo], limit: int = 5) -> str:
    """A short list of track names for a summary line, e.g. `A — x, B — y and 3 more`."""
    listed = list(tracks)
    shown = ", ".join(t.title_line for t in listed[:limit])
    return f"{shown} and {len(listed) - limit} more" if len(listed) > limit else shown

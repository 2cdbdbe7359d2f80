"""Pre-resolving playlists into the stream cache (`python -m bot index`, DESIGN §4).

Two steps. `plan()` lists the tracks of the playlists asked for (and of every playlist of the
linked users asked for), de-duplicated, and fails early on bad input: an unknown playlist, a
user who never linked, a run the Spotify budget cannot carry (it says how many calls it needs).

Development mode (shared/REALITY.md): Spotify lets an app read the items of a playlist only
with the token of a user who owns or collaborates on it, and never Spotify's own playlists.
A user's listed playlist that may not be read is skipped and reported (`IndexPlan.skipped`);
a playlist asked for by id is read with the token of the linked user given as `reader`, and
the rule is explained when Spotify refuses it.

`run()` then goes through the plan with bounded concurrency. A track whose cache entry still
has a usable stream URL counts as cached without calling the resolver at all, so an
already-indexed track costs one storage read: no search, no extraction, and no access-time
write (indexing is not listening; it must not keep entries alive in the LRU).
Everything else goes through `Resolver.resolve`, which writes each result as it lands, so an
interrupted run loses nothing: the next one counts the finished tracks as cached and carries on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Protocol, TypeVar

from core.errors import (
    BudgetRefused,
    NotFound,
    NotLinked,
    PlaylistNotReadable,
    TokenRevoked,
    UserFacingError,
)
from core.index_report import (
    IndexPlan,
    IndexReport,
    Outcome,
    PlannedPlaylist,
    SkippedPlaylist,
    TrackResult,
    failure_reason,
    track_names,
)
from core.resolver import still_usable
from core.spotify.models import PlaylistRef
from core.spotify.quota import CallPriority
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
    "SkippedPlaylist",
    "StreamResolver",
    "TrackResult",
    "failure_reason",
    "parse_playlist_id",
    "track_names",
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


class Progress(Protocol):
    """Told about a run as it goes (the CLI's progress bar; tests record it)."""

    def started(self, plan: IndexPlan) -> None: ...

    def track_done(self, result: TrackResult) -> None: ...


# Spotify pages playlist items by 100: what reading a playlist costs in calls.
PAGE = 100

NOT_READABLE_BY_APP = (
    "Spotify refused to let this bot read playlist {id}: in development mode a bot reads only "
    "playlists owned by (or shared with as a collaborator) the linked user whose token it "
    "uses. Give --as DISCORD_USER_ID of that user (they must have run /link)."
)
SKIP_NOT_READABLE = "not theirs: only owned or collaborative playlists can be read"
SKIP_NOT_FOUND = "one of Spotify's own playlists (or gone): bots cannot read those"


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
        calls_left: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        """`min_validity_s`: a cached stream URL with less time left is renewed, not counted
        as cached (pass the resolver's own `config.min_validity_s` so both agree).
        `calls_left`: Spotify calls background work may still spend (the quota governor's
        `left_for(BACKGROUND)` after a refresh); a plan needing more is refused."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._source = source
        self._resolver = resolver
        self._cache = cache
        self._concurrency = concurrency
        self._min_validity_s = min_validity_s
        self._clock = clock
        self._calls_left = calls_left

    # --- planning ----------------------------------------------------------------------------

    async def plan(
        self,
        playlist_ids: Sequence[str],
        user_ids: Sequence[int] = (),
        reader: int | None = None,
    ) -> IndexPlan:
        """List the tracks to index; raise a UserFacingError naming bad input.

        Playlists given by id are read with `reader`'s token (a linked user; None: the app's
        token, which development mode refuses), every playlist of a user with that user's.
        """
        wanted: list[tuple[str, str | None, int | None]] = [(p, None, reader) for p in playlist_ids]
        cost: dict[str, int] = dict.fromkeys(playlist_ids, 1)  # unknown size: one page at least
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
            cost.update({ref.id: max(1, -(-ref.track_count // PAGE)) for ref in refs})
        await self._check_budget(sum(cost.values()))

        # Each playlist once; one also listed under a --user is read with that user's token.
        distinct: dict[str, tuple[str | None, int | None]] = {}
        for playlist_id, name, who in wanted:
            known = distinct.get(playlist_id)
            if known is None:
                distinct[playlist_id] = (name, who)
            else:  # keep the first reader that is a user, and a name once one is known
                distinct[playlist_id] = (known[0] or name, who if known[1] is None else known[1])
        # A user may have hundreds of playlists: read a few at a time (the client's limiter
        # keeps the app within Spotify's budget), and keep the order they were asked for.
        gate = asyncio.Semaphore(self._concurrency)

        async def read(playlist_id: str, who: int | None) -> list[TrackInfo]:
            async with gate:
                return await self._source.playlist_tracks(playlist_id, who)

        listed = await asyncio.gather(
            *(read(playlist_id, who) for playlist_id, (_, who) in distinct.items()),
            return_exceptions=True,
        )
        return _assemble(distinct, listed, set(playlist_ids))

    async def _check_budget(self, needed: int) -> None:
        if self._calls_left is None:
            return
        left = await self._calls_left()
        if needed > left:
            raise BudgetRefused(
                f"This run needs about {needed} Spotify calls to read its playlists, but only "
                f"{left} are left for background work in the bot's Spotify budget "
                "(SPOTIFY_DAILY_BUDGET, over a rolling 24 h). Index fewer playlists, or wait "
                "for older calls to age out of the window.",
                priority=CallPriority.BACKGROUND,
                retry_after=3600.0,
            )

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


def _assemble(
    distinct: dict[str, tuple[str | None, int | None]],
    listed: Sequence[list[TrackInfo] | BaseException],
    asked: set[str],
) -> IndexPlan:
    """The plan from what each playlist read returned; a user's unreadable ones skipped."""
    playlists: list[PlannedPlaylist] = []
    skipped: list[SkippedPlaylist] = []
    tracks: dict[str, TrackInfo] = {}
    for (playlist_id, (name, owner)), items in zip(distinct.items(), listed, strict=True):
        if isinstance(items, PlaylistNotReadable | NotFound) and playlist_id not in asked:
            # One of a user's listed playlists (followed, or Spotify's): skip, report.
            why = SKIP_NOT_FOUND if isinstance(items, NotFound) else SKIP_NOT_READABLE
            skipped.append(SkippedPlaylist(playlist_id, name or playlist_id, why))
            continue
        if isinstance(items, PlaylistNotReadable):
            if owner is None:
                raise PlaylistNotReadable(NOT_READABLE_BY_APP.format(id=playlist_id))
            raise items
        if isinstance(items, NotFound):
            raise NotFound(
                f"Spotify has no playlist {playlist_id} that this bot can read: it does not "
                "exist, or it is one of Spotify's own (editorial, Discover Weekly...), "
                "which bots cannot read. Copy its tracks into a playlist you own."
            ) from None
        if isinstance(items, BaseException):
            raise items
        playlists.append(PlannedPlaylist(playlist_id, name or playlist_id, len(items), owner))
        for track in items:
            tracks.setdefault(track.id, track)
    return IndexPlan(tuple(playlists), tuple(tracks.values()), tuple(skipped))


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

"""Spotify track -> playable audio stream URL, cached (DESIGN §4, "Stream resolution").

Paths through `resolve()`:
- cache hit with a stream URL that still has time left: returned at once; when it expires
  soon, a background task re-extracts it;
- cached video but expired stream URL: only yt-dlp runs again, on the cached video URL;
- no cached video, or `force`: search (spotDL, then a yt-dlp search), then extraction.

Concurrent requests for one track share one resolution (single-flight). The blocking libraries
run in a bounded thread pool owned by the resolver, never on the event loop. Failures are
cached for a short time (storage `Failure` records). Cache hits do not write: last-access
times are collected and written in batches by a timer, which also re-resolves recently used
entries before their stream URLs expire.

Front cache: the most recently used entries are also kept in process memory (a small LRU), so
a hot track is answered without a storage round trip. Storage stays the source of truth; the
copy in memory is only served while (a) its stream URL is still usable (same minimum remaining
life as a storage hit) and (b) it was read or written by this process less than
`front_ttl_s` ago. Every write this process makes (resolution, re-extraction, refresh, forced
re-match) replaces the copy; a forced request never reads it (while the re-match runs, storage
holds the same entry, so other requests get the same answer from either). What (b) bounds is the
staleness of changes made elsewhere: another process's forced re-match (Redis) or an entry
evicted or deleted in storage may still be served from here for up to `front_ttl_s`. That is
acceptable because such a URL still plays (it is checked for expiry like any hit), and the
deferred access-time writes never resurrect an evicted entry (both backends only touch entries
that exist), so storage's bound holds.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from core.budget import Bucket, BucketLimit
from core.errors import (
    ExtractionFailed,
    NoMatch,
    NotFound,
    Overloaded,
    RateLimited,
    ResolveError,
    ResolveTimeout,
    SearchFailed,
    SpotifyError,
    UserFacingError,
)
from core.matcher import SpotdlFinder, VideoMatch
from core.tracks import TrackInfo, is_track_id
from core.youtube import Extraction, YouTube, YouTubeConfig, stream_expiry
from storage.base import StreamCache
from storage.records import CachedStream, Failure

__all__ = [
    "Extractor",
    "Finder",
    "Resolver",
    "ResolverConfig",
    "ResolverStats",
    "TrackLookup",
    "build_resolver",
    "claim_key",
    "is_stream_key",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
TrackLookup = Callable[[str], Awaitable[TrackInfo]]


class Finder(Protocol):
    """Blocking: the best video for a track (core.matcher.SpotdlFinder)."""

    def find(self, track: TrackInfo) -> VideoMatch: ...

    def warm_up(self) -> None: ...


class Extractor(Protocol):
    """Blocking: a stream URL for a video (core.youtube.YouTube)."""

    def extract(self, video_url: str) -> Extraction: ...

    def warm_up(self) -> None:
        """Blocking: pay one-off import and set-up costs before the first request."""
        ...

    def close(self) -> None:
        """Release pooled connections once no thread uses the extractor any more."""
        ...


LOOKUPS = BucketLimit(burst=20, per_s=1 / 30)  # ~2,900 a day at most, at BACKGROUND priority
CLAIM_SEARCHES = BucketLimit(burst=10, per_s=1 / 30)


@dataclass(frozen=True)
class ResolverConfig:
    workers: int = 4  # threads running spotDL / yt-dlp
    max_in_flight: int = 256  # distinct tracks resolving at once before Overloaded
    timeout_s: float = 45.0  # a caller waits this long (the resolution itself carries on)
    min_validity_s: float = 120.0  # a stream URL with less time left is treated as expired
    refresh_ahead_s: float = 1800.0  # a hit expiring within this is refreshed in the background
    fallback_ttl_s: float = 3600.0  # lifetime of a stream URL without an `expire` parameter
    failure_ttl_s: float = 120.0  # negative cache
    touch_interval_s: float = 10.0  # how often deferred last-access times are written
    refresh_interval_s: float = 60.0  # how often the refresher looks for expiring entries
    refresh_recent_s: float = 6 * 3600.0  # "recently used": accessed within this
    refresh_batch: int = 16  # entries re-extracted per refresher pass
    front_entries: int = 1024  # entries kept in process memory (0: every hit reads storage)
    front_ttl_s: float = 30.0  # how long an entry in memory is served without asking storage
    force_cooldown_s: float = 600.0  # a track is re-matched on request at most this often
    known_tracks: int = 10_000  # Spotify's metadata of this many tracks is kept in memory
    # Spotify lookups any client can trigger (a new id sent to /song or /v1/tracks/{id}): one
    # budget for all clients together, so many addresses cannot drain the daily Spotify quota.
    lookups: BucketLimit = LOOKUPS
    # Searches from a client's own metadata (only while Spotify cannot be asked): all clients.
    claim_searches: BucketLimit = CLAIM_SEARCHES
    claim_entries: int = 64  # matches kept under claim keys (`id~digest`) by this process
    reextract_cooldown_s: float = 60.0  # a refused stream URL is re-extracted at most this often


@dataclass
class ResolverStats:
    hits: int = 0  # served from the cache
    memory_hits: int = 0  # of the hits, those served from the in-process front cache
    misses: int = 0  # had to wait for a resolution (including joiners)
    coalesced: int = 0  # of the misses, those that joined a resolution already running
    negative_hits: int = 0  # answered from the negative cache
    searches: int = 0
    extractions: int = 0
    refreshes: int = 0  # background re-extractions (included in extractions)
    failures: int = 0  # resolutions that ended in NoMatch / ExtractionFailed / SearchFailed


_FAILURE_KINDS: dict[str, Callable[[], UserFacingError]] = {
    "not_found": lambda: NotFound("Spotify has no track with this id."),
    "no_match": lambda: NoMatch("No YouTube video matches this track."),
    "extraction_failed": lambda: ExtractionFailed(
        "Could not get an audio stream for this track; try again in a few minutes."
    ),
    "search_failed": lambda: SearchFailed("YouTube search is not answering; try again later."),
}


_CLAIM_KEY = re.compile(r"[0-9A-Za-z]{22}(~[0-9a-f]{16})?")


def claim_key(claimed: TrackInfo) -> str:
    """The cache key of a match made from a client's own metadata (`id~digest`): only requests
    carrying exactly that metadata share it; it never stands for the bare id."""
    described = [claimed.name, list(claimed.artists), claimed.album, claimed.duration_ms]
    digest = hashlib.sha256(json.dumps([*described, claimed.isrc]).encode()).hexdigest()
    return f"{claimed.id}~{digest[:16]}"


def is_stream_key(value: str) -> bool:
    """A track id, or a claim key made by `claim_key`."""
    return _CLAIM_KEY.fullmatch(value) is not None


def _is_claim(key: str) -> bool:
    return "~" in key


def still_usable(entry: CachedStream, now: float, min_validity_s: float) -> bool:
    """Whether a cached stream URL may still be handed out: it has at least `min_validity_s`
    seconds left (the resolver's and the indexer's notion of "cached" must agree)."""
    return bool(entry.stream_url) and entry.expires_at - now > min_validity_s


def _failure_kind(exc: ResolveError) -> str:
    if isinstance(exc, NoMatch):
        return "no_match"
    if isinstance(exc, ExtractionFailed):
        return "extraction_failed"
    return "search_failed"


class Resolver:
    def __init__(
        self,
        cache: StreamCache,
        finder: Finder,
        extractor: Extractor,
        track_lookup: TrackLookup,
        *,
        config: ResolverConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache = cache
        self._finder = finder
        self._extractor = extractor
        self._track_lookup = track_lookup
        self.config = config or ResolverConfig()
        self._clock = clock
        self._pool = ThreadPoolExecutor(self.config.workers, thread_name_prefix="resolver")
        # One task per track and kind of work ("fill", "force", "refresh"): a forced re-match
        # never returns the result of a plain resolution, and a hit never waits for a refresh.
        self._flights: dict[tuple[str, str], asyncio.Task[CachedStream]] = {}
        self._accessed: dict[str, float] = {}
        # track id -> (entry, served from memory until); least recently used first.
        self._front: OrderedDict[str, tuple[CachedStream, float]] = OrderedDict()
        # Spotify's own metadata per track id (it never changes): from a host's player read
        # (free) or one app-token lookup; a client's claim never lands here.
        self._known: OrderedDict[str, TrackInfo] = OrderedDict()
        self._forced_at: dict[str, float] = {}
        self._lookups = Bucket(self.config.lookups)
        self._claim_searches = Bucket(self.config.claim_searches)
        # Claim keys this process wrote, least recently used first: the only entries a client's
        # body can create, so they get a small bound of their own (storage's is for real ones).
        self._claims: OrderedDict[str, None] = OrderedDict()
        self._reextracted_at: dict[str, float] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._stats = ResolverStats()
        self._closed = False

    # --- lifetime ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Warm spotDL and yt-dlp up, then start the timers (access-time writes, refresher)."""
        if self._loops:
            return
        await self._run(self._extractor.warm_up)
        await self._run(self._finder.warm_up)
        # spotDL and yt-dlp leave ~10^5 long-lived objects (1,700 extractor classes, compiled
        # regexes); a full collection walking them stalled the loop ~150 ms. Freeze what
        # exists after start-up so the collector leaves it alone.
        gc.freeze()
        self._loops = [
            asyncio.create_task(self._every(self.config.touch_interval_s, self.flush_access)),
            asyncio.create_task(self._every(self.config.refresh_interval_s, self.refresh_expiring)),
        ]

    async def aclose(self) -> None:
        """Stop the timers, cancel running resolutions, write pending access times."""
        self._closed = True
        loops, self._loops = self._loops, []
        flights = list(self._flights.values())
        for task in [*loops, *flights]:
            task.cancel()
        await asyncio.gather(*loops, *flights, return_exceptions=True)
        self._front.clear()
        await self.flush_access()
        # Threads cannot be interrupted; wait for them off the loop so none outlives us.
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        self._extractor.close()

    async def __aenter__(self) -> Resolver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def stats(self) -> ResolverStats:
        """A snapshot of the counters (for /metrics)."""
        return replace(self._stats)

    # --- resolving ---------------------------------------------------------------------------

    async def resolve(self, track: TrackInfo, force: bool = False) -> CachedStream:
        """The stream for a track whose metadata came from Spotify itself (a host's player read,
        a playlist the indexer read): trusted, and remembered for later searches."""
        self._learn(track)
        return await self._resolve(track.id, track, force)

    async def resolve_claimed(self, claimed: TrackInfo, force: bool = False) -> CachedStream:
        """The stream for a track described by a client (the PWA's body): a claim, not the truth.

        The match kept under the bare id is made from Spotify's own metadata only (known, or
        one app-token lookup), so no client can change what another one gets for an id. Only
        when Spotify cannot be asked (quota, outage) is the client's metadata searched, and that
        match and its failures are kept under `claim_key(claimed)`, for the same claim only.
        """
        try:
            return await self._resolve(claimed.id, self._known.get(claimed.id), force)
        except NotFound:
            raise
        except SpotifyError as exc:
            log.info(
                "Spotify metadata of %s unavailable (%s); matching the client's",
                claimed.id,
                exc.message,
            )
        return await self._resolve(claim_key(claimed), claimed, force)

    async def resolve_key(self, key: str) -> CachedStream:
        """The stream cached under a key handed out earlier (a track id or a claim key)."""
        if not is_stream_key(key):
            raise UserFacingError("That is not a Spotify track id (22 letters and digits).")
        return await self._resolve(key, self._known.get(key), False)

    async def refused(self, key: str, stream_url: str) -> CachedStream | None:
        """YouTube refused `stream_url` (403) before its expiry: re-extract it once from the
        cached video and update the cache. None when there is nothing to re-extract from.

        Listeners refused at the same moment share one re-extraction; one arriving after it
        finished gets the new URL without another.
        """
        cached = await self._cache.get_stream(key)
        if cached is None or not cached.video_url:
            return None
        now = self._clock()
        if cached.stream_url != stream_url and still_usable(cached, now, 0.0):
            self._remember(cached, now)
            return cached
        self._front.pop(key, None)
        flight = self._flights.get((key, "reextract"))
        if flight is None:
            # While YouTube keeps refusing, every listener's request would cost an extraction.
            last = self._reextracted_at.get(key, float("-inf"))
            if now - last < self.config.reextract_cooldown_s:
                log.info("YouTube refused %s again within the re-extraction cooldown", key)
                return None
            self._reextracted_at[key] = now
            if len(self._reextracted_at) > self.config.known_tracks:
                cutoff = now - self.config.reextract_cooldown_s
                self._reextracted_at = {
                    k: t for k, t in self._reextracted_at.items() if t >= cutoff
                }
            log.info("YouTube refused the cached stream URL of %s early; re-extracting", key)
            flight = self._launch((key, "reextract"), self._reextract(cached))
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await asyncio.shield(flight)
        except TimeoutError:
            raise ResolveTimeout("The audio source is slow to answer; try again shortly.") from None

    def _learn(self, track: TrackInfo) -> None:
        self._known[track.id] = track
        self._known.move_to_end(track.id)
        while len(self._known) > self.config.known_tracks:
            self._known.popitem(last=False)

    def _may_force(self, key: str) -> bool:
        """A forced re-match is honoured at most once per track per cooldown: it costs a search
        and may cost a Spotify lookup, and anyone may ask for it."""
        now = self._clock()
        if now - self._forced_at.get(key, float("-inf")) < self.config.force_cooldown_s:
            log.info("ignoring a forced re-match of %s within its cooldown", key)
            return False
        self._forced_at[key] = now
        if len(self._forced_at) > self.config.known_tracks:
            cutoff = now - self.config.force_cooldown_s
            self._forced_at = {k: t for k, t in self._forced_at.items() if t >= cutoff}
        return True

    async def resolve_id(self, spotify_id: str, force: bool = False) -> CachedStream:
        """The stream for a track id; Spotify is asked for the metadata only if a search runs."""
        if not is_track_id(spotify_id):
            raise UserFacingError("That is not a Spotify track id (22 letters and digits).")
        return await self._resolve(spotify_id, None, force)

    async def _resolve(self, track_id: str, track: TrackInfo | None, force: bool) -> CachedStream:
        if self._closed:
            raise Overloaded("The stream resolver is shutting down.")
        if force and not self._may_force(track_id):
            force = False
        kind = "force" if force else "fill"
        flight = self._flights.get((track_id, kind))
        if flight is not None:
            self._stats.coalesced += 1
        else:
            cached = None
            if not force:
                now = self._clock()
                cached = self._front_get(track_id, now)
                if cached is not None:
                    self._stats.memory_hits += 1
                    return self._hit(cached, now)
                cached = await self._cache.get_stream(track_id)
                if cached is not None and still_usable(cached, now, self.config.min_validity_s):
                    self._remember(cached, now)
                    return self._hit(cached, now)
                failure = await self._cache.get_failure(track_id, now)
                if failure is not None:
                    self._stats.negative_hits += 1
                    raise _FAILURE_KINDS.get(failure.reason, _FAILURE_KINDS["search_failed"])()
            # Another request may have started a flight while we awaited storage; a running
            # background refresh produces exactly what an expired entry needs, too.
            flight = self._flights.get((track_id, kind))
            if flight is None and not force:
                flight = self._flights.get((track_id, "refresh"))
            if flight is None:
                flight = self._launch((track_id, kind), self._fill(track_id, track, cached, force))
            else:
                self._stats.coalesced += 1
        self._stats.misses += 1
        try:
            async with asyncio.timeout(self.config.timeout_s):
                entry = await asyncio.shield(flight)
        except TimeoutError:
            raise ResolveTimeout(
                "Finding this track's stream is taking too long; try again shortly."
            ) from None
        self._accessed[track_id] = self._clock()
        return entry

    def _hit(self, cached: CachedStream, now: float) -> CachedStream:
        self._stats.hits += 1
        self._accessed[cached.track_id] = now
        if cached.track_id in self._claims:
            self._claims.move_to_end(cached.track_id)
        if cached.expires_at - now < self.config.refresh_ahead_s:
            self._refresh_in_background(cached)
        return cached

    def _front_get(self, track_id: str, now: float) -> CachedStream | None:
        """The entry in memory if it may still be served without asking storage."""
        remembered = self._front.get(track_id)
        if remembered is None:
            return None
        entry, until = remembered
        if now < until and still_usable(entry, now, self.config.min_validity_s):
            self._front.move_to_end(track_id)
            return entry
        del self._front[track_id]
        return None

    def _remember(self, entry: CachedStream, now: float) -> None:
        """Keep (or replace) an entry just read from or written to storage in memory."""
        if self.config.front_entries <= 0:
            return
        known = self._front.get(entry.track_id)
        if known is not None and known[0].resolved_at > entry.resolved_at:
            # A storage read that started before this process wrote a newer resolution.
            entry = known[0]
        self._front[entry.track_id] = (entry, now + self.config.front_ttl_s)
        self._front.move_to_end(entry.track_id)
        while len(self._front) > self.config.front_entries:
            self._front.popitem(last=False)

    def _launch(
        self, key: tuple[str, str], work: Awaitable[CachedStream]
    ) -> asyncio.Task[CachedStream]:
        if len(self._flights) >= self.config.max_in_flight:
            if asyncio.iscoroutine(work):
                work.close()
            raise Overloaded("Too many tracks are being looked up right now; try again shortly.")
        task: asyncio.Task[CachedStream] = asyncio.ensure_future(work)
        self._flights[key] = task

        def finished(t: asyncio.Task[CachedStream]) -> None:
            if self._flights.get(key) is t:
                del self._flights[key]
            # Retrieve the outcome so a flight nobody waits for (a background refresh, or
            # one whose callers timed out) does not log "exception was never retrieved".
            if not t.cancelled() and (exc := t.exception()) is not None:
                if isinstance(exc, UserFacingError):
                    log.debug("%s of %s failed: %s", key[1], key[0], exc.message)
                else:
                    log.error("%s of %s failed", key[1], key[0], exc_info=exc)

        task.add_done_callback(finished)
        return task

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    async def _fill(
        self, track_id: str, track: TrackInfo | None, cached: CachedStream | None, force: bool
    ) -> CachedStream:
        try:
            if cached is not None and cached.video_url and not force:
                try:
                    return await self._reextract(cached)
                except ExtractionFailed:
                    # The video may be gone (deleted, blocked): look for another one.
                    log.info("cached video of %s no longer extracts; searching again", track_id)
            if track is None:
                track = await self._lookup(track_id)
            if _is_claim(track_id) and not self._claim_searches.take():
                # Not cached as a failure: the next claim may come when there is budget again.
                raise Overloaded("Too many songs are being looked up right now; try again soon.")
            self._stats.searches += 1
            match = await self._run(self._finder.find, track)
            self._stats.extractions += 1
            extraction = await self._run(self._extractor.extract, match.video_url)
            now = self._clock()
            entry = CachedStream(
                track_id=track_id,
                video_url=match.video_url,
                stream_url=extraction.stream_url,
                expires_at=stream_expiry(extraction.stream_url, now, self.config.fallback_ttl_s),
                resolved_at=now,
                last_access=now,
                title=match.title,
                duration_s=match.duration_s,
                score=match.score,
                http_headers=extraction.http_headers,
            )
            await self._cache.put_stream(entry)
            self._remember(entry, self._clock())
            if _is_claim(track_id):
                await self._keep_claim(track_id)
            if force:
                await self._cache.delete_failure(track_id)
            log.info(
                "resolved %s -> %s (%s, score %.0f)",
                track_id,
                match.video_url,
                match.source,
                match.score,
            )
            return entry
        except (NoMatch, ExtractionFailed, SearchFailed) as exc:
            self._stats.failures += 1
            retry_after = self._clock() + self.config.failure_ttl_s
            await self._cache.put_failure(Failure(track_id, _failure_kind(exc), retry_after))
            log.info("resolving %s failed: %s", track_id, exc.message)
            raise

    async def _lookup(self, track_id: str) -> TrackInfo:
        """Spotify's metadata of a track nobody has described yet: one budgeted app call.

        An id Spotify does not know is remembered as a failure (for `failure_ttl_s`), so a
        client repeating it costs no further call. A refused call (budget, quota) is a
        SpotifyError: `resolve_claimed` then falls back to the client's own claim.
        """
        if not self._lookups.take():
            raise RateLimited(
                "Too many new tracks are being looked up right now; try again in a minute.",
                self._lookups.retry_after(),
            )
        try:
            track = await self._track_lookup(track_id)
        except NotFound:
            retry_after = self._clock() + self.config.failure_ttl_s
            await self._cache.put_failure(Failure(track_id, "not_found", retry_after))
            raise
        self._learn(track)
        return track

    async def _keep_claim(self, key: str) -> None:
        """Count a claim entry just written; the least recently used beyond the bound goes."""
        self._claims[key] = None
        self._claims.move_to_end(key)
        while len(self._claims) > self.config.claim_entries:
            old, _ = self._claims.popitem(last=False)
            self._front.pop(old, None)
            await self._cache.delete_stream(old)

    async def _reextract(self, cached: CachedStream) -> CachedStream:
        self._stats.extractions += 1
        extraction = await self._run(self._extractor.extract, cached.video_url)
        now = self._clock()
        entry = replace(
            cached,
            stream_url=extraction.stream_url,
            expires_at=stream_expiry(extraction.stream_url, now, self.config.fallback_ttl_s),
            http_headers=extraction.http_headers,
            resolved_at=now,
            last_access=max(cached.last_access, self._accessed.get(cached.track_id, 0.0)),
        )
        await self._cache.put_stream(entry)
        self._remember(entry, self._clock())
        return entry

    # --- background work ---------------------------------------------------------------------

    def _refresh_in_background(self, cached: CachedStream) -> asyncio.Task[CachedStream] | None:
        key = (cached.track_id, "refresh")
        if _is_claim(cached.track_id):
            return None  # a claim's match is not kept alive: it is re-extracted when asked
        if self._closed or key in self._flights:
            return self._flights.get(key)
        self._stats.refreshes += 1
        try:
            return self._launch(key, self._reextract(cached))
        except Overloaded:
            return None  # the entry is still valid; the next pass tries again

    async def refresh_expiring(self) -> int:
        """One refresher pass: re-extract recently used entries expiring soon; how many."""
        await self.flush_access()
        now = self._clock()
        entries = await self._cache.streams_to_refresh(
            expiring_before=now + self.config.refresh_ahead_s,
            accessed_since=now - self.config.refresh_recent_s,
            # Claim entries are skipped: ask for enough that they cannot crowd real ones out.
            limit=self.config.refresh_batch + self.config.claim_entries,
        )
        entries = [e for e in entries if not _is_claim(e.track_id)][: self.config.refresh_batch]
        tasks = [t for e in entries if (t := self._refresh_in_background(e)) is not None]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        refreshed = sum(1 for r in results if isinstance(r, CachedStream))
        if entries:
            log.info("refreshed %d of %d expiring stream URLs", refreshed, len(entries))
        return refreshed

    async def flush_access(self) -> None:
        """Write the last-access times collected since the previous flush, in one batch."""
        if not self._accessed:
            return
        batch, self._accessed = self._accessed, {}
        try:
            await self._cache.touch_streams(batch)
        except Exception:
            log.warning("could not write %d access times; keeping them", len(batch), exc_info=True)
            for track_id, at in batch.items():
                self._accessed[track_id] = max(at, self._accessed.get(track_id, 0.0))

    async def _every(self, interval: float, work: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await work()
            except Exception:  # a storage blip must not end the timer
                log.exception("resolver background task failed; retrying next interval")


class NoYouTubeMusic:
    """A `ytmusicapi.YTMusic` stand-in for spotDL that finds nothing and makes no request."""

    def search(self, query: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []


def build_resolver(
    cache: StreamCache,
    track_lookup: TrackLookup,
    *,
    config: ResolverConfig | None = None,
    youtube_base_url: str | None = None,
    ytmusic_client_factory: Callable[[], Any] | None = None,
    duration_tolerance_s: float = 7.0,
    youtube_config: YouTubeConfig | None = None,
) -> Resolver:
    """A Resolver over spotDL + yt-dlp. Call from the running loop; then `await start()`.

    `youtube_base_url` and `ytmusic_client_factory` point both libraries at a YouTube stand-in
    (tests/fakes/youtube.py: `base_url` and `ytmusic_client`); leave them None in production.
    With a stand-in but no YouTube Music client, spotDL's search finds nothing (rather than
    reaching the real YouTube Music) and the yt-dlp search against the stand-in does the work.
    """
    if youtube_config is None:
        youtube_config = YouTubeConfig(base_url=youtube_base_url)
    if youtube_config.base_url is not None and ytmusic_client_factory is None:
        ytmusic_client_factory = NoYouTubeMusic
    youtube = YouTube(config=youtube_config)
    finder = SpotdlFinder(
        youtube,
        loop=asyncio.get_running_loop(),
        duration_tolerance_s=duration_tolerance_s,
        ytmusic_client_factory=ytmusic_client_factory,
    )
    return Resolver(cache, finder, youtube, track_lookup, config=config)

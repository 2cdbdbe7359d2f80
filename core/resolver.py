"""Spotify track -> playable audio stream URL, cached (DESIGN §4, "Stream resolution").

Paths through `resolve()`:
- cache hit with a stream URL that still has time left: returned at once; when it expires
  soon, a background task re-extracts it;
- cached video but expired stream URL: only yt-dlp runs again, on the cached video URL;
- no cached video, or `force`: search (spotDL, then a yt-dlp search), then extraction.

Concurrent requests for one track share one resolution (single-flight). The blocking libraries
run in a bounded thread pool owned by the resolver, never on the event loop. Failures are
cached for a short time (storage `Failure` records), and so is an id Spotify does not know.

Around it: the front cache in process memory (core/front_cache.py), the claims a client's body
makes and how far they are trusted (core/claims.py), deferred access-time writes and the
refresher (core/refresher.py), the blocking libraries and the cache records their answers
become (core/stream_sources.py), the budgeted Spotify lookup (core/track_metadata.py), and what
anyone on the internet can make it spend, capped for all clients together (core/budget.py):
Spotify lookups of new ids, searches from claims, and re-extractions of URLs YouTube refuses.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from core.budget import Bucket, Cooldown
from core.claims import (
    ClaimEntries,
    KnownTracks,
    claim_key,
    is_claim,
    is_stream_key,
    resolve_claimed,
)
from core.errors import (
    ExtractionFailed,
    NoMatch,
    Overloaded,
    ResolveTimeout,
    SearchFailed,
    UserFacingError,
)
from core.front_cache import FrontCache, still_usable
from core.refresher import Refresher
from core.resolver_config import ResolverConfig, ResolverStats
from core.stream_sources import (
    Extractor,
    Finder,
    failure_error,
    failure_reason,
    matched,
    reextracted,
)
from core.track_metadata import TrackLookup, TrackLookups
from core.tracks import InvalidTrackId, TrackInfo, check_track_id
from storage.base import LeaseStore, StreamCache
from storage.records import CachedStream, Failure

__all__ = [
    "Extractor",
    "Finder",
    "Resolver",
    "ResolverConfig",
    "ResolverStats",
    "TrackLookup",
    "claim_key",
    "is_stream_key",
    "still_usable",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        leases: LeaseStore | None = None,
    ) -> None:
        """`leases`: with several processes on one storage, one refresher pass at a time."""
        self._cache = cache
        self._finder = finder
        self._extractor = extractor
        self.config = config = config or ResolverConfig()
        self._clock = clock
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="resolver")
        # One task per track and kind of work ("fill", "force", "refresh"): a forced re-match
        # never returns the result of a plain resolution, and a hit never waits for a refresh.
        self._flights: dict[tuple[str, str], asyncio.Task[CachedStream]] = {}
        self._front = FrontCache(config.front_entries, config.front_ttl_s, config.min_validity_s)
        self._refresher = Refresher(
            cache, config, clock, self._refresh_in_background, leases=leases
        )
        # Spotify's own metadata (a host's player read, or one app-token lookup); a client's
        # claim never lands here.
        self._known = KnownTracks(config.known_tracks)
        self._lookups = TrackLookups(
            track_lookup,
            self._known,
            config.lookups,
            cache=cache,
            failure_ttl_s=config.failure_ttl_s,
            clock=clock,
        )
        # A forced re-match costs a search and maybe a Spotify lookup, and anyone may ask for
        # one; a refused URL's re-extraction is asked for by every listener while YouTube
        # keeps refusing. Each runs at most once per key per cooldown.
        self._forces = Cooldown(config.force_cooldown_s, config.known_tracks, clock)
        self._reextracts = Cooldown(config.reextract_cooldown_s, config.known_tracks, clock)
        self._claims = ClaimEntries(config.claim_entries)
        self._claim_searches = Bucket(config.claim_searches)
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
        self._loops = self._refresher.timers()

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

    async def flush_access(self) -> None:
        """Write the deferred last-access times now (core/refresher.py)."""
        await self._refresher.flush_access()

    async def refresh_expiring(self) -> int:
        """One refresher pass now; how many entries were re-extracted (core/refresher.py)."""
        return await self._refresher.refresh_expiring()

    async def refresh_turn(self) -> int:
        """The timer's pass: `refresh_expiring` if this process takes the refresher's lease."""
        return await self._refresher.refresh_turn()

    # --- resolving ---------------------------------------------------------------------------

    async def resolve(self, track: TrackInfo, force: bool = False) -> CachedStream:
        """The stream for a track whose metadata came from Spotify itself (a host's player read,
        a playlist the indexer read): trusted, and remembered for later searches."""
        self._known.learn(track)
        return await self._resolve(track.id, track, force)

    async def resolve_claimed(self, claimed: TrackInfo, force: bool = False) -> CachedStream:
        """The stream for a track described by a client (the PWA's body): a claim, not the
        truth (core/claims.py). No client can change what another one gets for an id."""
        return await resolve_claimed(self._resolve, self._known, claimed, force)

    async def resolve_key(self, key: str) -> CachedStream:
        """The stream cached under a key handed out earlier (a track id or a claim key)."""
        if not is_stream_key(key):
            raise InvalidTrackId("That is not a Spotify track id (22 letters and digits).")
        return await self._resolve(key, self._known.get(key), False)

    async def resolve_id(self, spotify_id: str, force: bool = False) -> CachedStream:
        """The stream for a track id; Spotify is asked for the metadata only if a search runs."""
        return await self._resolve(check_track_id(spotify_id), None, force)

    async def refused(self, key: str, stream_url: str) -> CachedStream | None:
        """YouTube refused `stream_url` (403) before its expiry: re-extract it once from the
        cached video and update the cache. None when there is nothing to re-extract from, or
        when this key was re-extracted within `reextract_cooldown_s` (YouTube keeps refusing:
        every listener's retry would cost an extraction).

        Listeners refused at the same moment share one re-extraction; one arriving after it
        finished gets the new URL without another.
        """
        cached = await self._cache.get_stream(key)
        if cached is None or not cached.video_url:
            return None
        now = self._clock()
        if cached.stream_url != stream_url and still_usable(cached, now, 0.0):
            self._front.remember(cached, now)
            return cached
        self._front.forget(key)
        flight = self._flights.get((key, "reextract"))
        if flight is None:
            if not self._reextracts.allow(key):
                log.info("YouTube refused %s again within the re-extraction cooldown", key)
                return None
            log.info("YouTube refused the cached stream URL of %s early; re-extracting", key)
            flight = self._launch((key, "reextract"), self._reextract(cached))
        return await self._wait(flight, "The audio source is slow to answer; try again shortly.")

    async def _resolve(self, key: str, track: TrackInfo | None, force: bool) -> CachedStream:
        if self._closed:
            raise Overloaded("The stream resolver is shutting down.")
        if force and not self._forces.allow(key):
            log.info("ignoring a forced re-match of %s within its cooldown", key)
            force = False
        kind = "force" if force else "fill"
        flight = self._flights.get((key, kind))
        if flight is not None:
            self._stats.coalesced += 1
        else:
            cached = None
            if not force:
                now = self._clock()
                cached = self._front_hit(key, now)
                if cached is not None:
                    return cached
                cached = await self._cache.get_stream(key)
                if cached is not None and still_usable(cached, now, self.config.min_validity_s):
                    self._front.remember(cached, now)
                    return self._hit(cached, now)
                failure = await self._cache.get_failure(key, now)
                if failure is not None:
                    self._stats.negative_hits += 1
                    raise failure_error(failure.reason)
            # Another request may have started a flight while we awaited storage; a running
            # background refresh produces exactly what an expired entry needs, too.
            flight = self._flights.get((key, kind))
            if flight is None and not force:
                flight = self._flights.get((key, "refresh"))
            if flight is None:
                flight = self._launch((key, kind), self._fill(key, track, cached, force))
            else:
                self._stats.coalesced += 1
        self._stats.misses += 1
        entry = await self._wait(
            flight, "Finding this track's stream is taking too long; try again shortly."
        )
        self._refresher.touch(key, self._clock())
        return entry

    async def _wait(self, flight: asyncio.Task[CachedStream], slow: str) -> CachedStream:
        """A caller's wait for a shared flight: at most `timeout_s`, and giving up never cancels
        the flight (others may wait for it; its result is cached either way)."""
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await asyncio.shield(flight)
        except TimeoutError:
            raise ResolveTimeout(slow) from None

    def cached(self, track_id: str) -> CachedStream | None:
        """The answer `resolve_claimed` would give at once for a track id, when the front cache
        holds it (else None: await `resolve_claimed`). A hit on the bare id is all a hot track's
        request needs; this spares it the coroutines and awaits of the full path."""
        if self._closed or (track_id, "fill") in self._flights:
            return None  # the full path raises, or waits for the running resolution
        return self._front_hit(track_id, self._clock())

    def _front_hit(self, key: str, now: float) -> CachedStream | None:
        cached = self._front.get(key, now)
        if cached is None:
            return None
        self._stats.memory_hits += 1
        return self._hit(cached, now)

    def _hit(self, cached: CachedStream, now: float) -> CachedStream:
        self._stats.hits += 1
        self._refresher.touch(cached.track_id, now)
        self._claims.touch(cached.track_id)
        if cached.expires_at - now < self.config.refresh_ahead_s:
            self._refresh_in_background(cached)
        return cached

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
        self, key: str, track: TrackInfo | None, cached: CachedStream | None, force: bool
    ) -> CachedStream:
        try:
            if cached is not None and cached.video_url and not force:
                try:
                    return await self._reextract(cached)
                except ExtractionFailed:
                    # The video may be gone (deleted, blocked): look for another one.
                    log.info("cached video of %s no longer extracts; searching again", key)
            if track is None and is_claim(key):
                # A claim's entry was evicted (ClaimEntries): only its claim can match it again.
                raise NoMatch("This song's match is no longer kept; play it again.")
            if track is None:
                track = await self._lookups.lookup(key)
            if is_claim(key) and not self._claim_searches.take():
                # Not cached as a failure: the next claim may come when there is budget again.
                raise Overloaded("Too many songs are being looked up right now; try again soon.")
            self._stats.searches += 1
            match = await self._run(self._finder.find, track)
            self._stats.extractions += 1
            extraction = await self._run(self._extractor.extract, match.video_url)
            entry = matched(key, match, extraction, self._clock(), self.config.fallback_ttl_s)
            await self._cache.put_stream(entry)
            self._front.remember(entry, self._clock())
            if is_claim(key):
                for old in self._claims.add(key):
                    self._front.forget(old)
                    await self._cache.delete_stream(old)
            if force:
                await self._cache.delete_failure(key)
            log.info(
                "resolved %s -> %s (%s, score %.0f)",
                key,
                match.video_url,
                match.source,
                match.score,
            )
            return entry
        except (NoMatch, ExtractionFailed, SearchFailed) as exc:
            self._stats.failures += 1
            retry_after = self._clock() + self.config.failure_ttl_s
            await self._cache.put_failure(Failure(key, failure_reason(exc), retry_after))
            log.info("resolving %s failed: %s", key, exc.message)
            raise

    async def _reextract(self, cached: CachedStream) -> CachedStream:
        self._stats.extractions += 1
        extraction = await self._run(self._extractor.extract, cached.video_url)
        now = self._clock()
        last_access = max(cached.last_access, self._refresher.last_access(cached.track_id))
        entry = reextracted(cached, extraction, now, self.config.fallback_ttl_s, last_access)
        await self._cache.put_stream(entry)
        self._front.remember(entry, self._clock())
        return entry

    def _refresh_in_background(self, cached: CachedStream) -> asyncio.Task[CachedStream] | None:
        key = (cached.track_id, "refresh")
        if is_claim(cached.track_id):
            return None  # a claim's match is not kept alive: it is re-extracted when asked
        if self._closed or key in self._flights:
            return self._flights.get(key)
        self._stats.refreshes += 1
        try:
            return self._launch(key, self._reextract(cached))
        except Overloaded:
            return None  # the entry is still valid; the next pass tries again

"""Spotify's metadata of a track nobody has described yet: one budgeted app-token lookup.

The resolver asks for it only when a search must run and no trusted metadata is known
(core/claims.py: a client's body is a claim, never the truth). Every client's new ids spend
one budget together (core/budget.py), so many addresses cannot drain the daily Spotify quota.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from core.budget import Bucket, BucketLimit
from core.claims import KnownTracks
from core.errors import NotFound, RateLimited
from core.tracks import TrackInfo
from storage.base import StreamCache
from storage.records import Failure

__all__ = ["TrackLookup", "TrackLookups"]

TrackLookup = Callable[[str], Awaitable[TrackInfo]]


class TrackLookups:
    def __init__(
        self,
        track_lookup: TrackLookup,
        known: KnownTracks,
        budget: BucketLimit,
        *,
        cache: StreamCache,
        failure_ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`known` learns each track looked up; `cache` keeps the ids Spotify does not know."""
        self._track_lookup = track_lookup
        self._known = known
        self._budget = Bucket(budget)
        self._cache = cache
        self._failure_ttl_s = failure_ttl_s
        self._clock = clock

    async def lookup(self, track_id: str) -> TrackInfo:
        """An id Spotify does not know is remembered as a failure (for `failure_ttl_s`), so a
        client repeating it costs no further call. A refused call (budget, quota) is a
        SpotifyError: `resolve_claimed` then falls back to the client's own claim.
        """
        if not self._budget.take():
            raise RateLimited(
                "Too many new tracks are being looked up right now; try again in a minute.",
                self._budget.retry_after(),
            )
        try:
            track = await self._track_lookup(track_id)
        except NotFound:
            retry_after = self._clock() + self._failure_ttl_s
            await self._cache.put_failure(Failure(track_id, "not_found", retry_after))
            raise
        self._known.learn(track)
        return track

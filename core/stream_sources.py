"""What the resolver asks the blocking libraries for, and how their answers are kept.

`Finder` (spotDL's matcher) and `Extractor` (yt-dlp) are blocking; the resolver runs them in its
own thread pool (core/resolver.py). Their answers become stream-cache records here: a matched or
re-extracted `CachedStream`, or a `Failure` whose reason names the error it answers with until
it expires (the negative cache). Pure functions: no I/O, no resolver state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from core.errors import (
    ExtractionFailed,
    NoMatch,
    NotFound,
    ResolveError,
    SearchFailed,
    UserFacingError,
)
from core.matcher import VideoMatch
from core.tracks import TrackInfo
from core.youtube import Extraction, stream_expiry
from storage.records import CachedStream

__all__ = ["Extractor", "Finder", "failure_error", "failure_reason", "matched", "reextracted"]


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


def matched(
    key: str, match: VideoMatch, extraction: Extraction, now: float, fallback_ttl_s: float
) -> CachedStream:
    """The cache entry of a new match and its first extraction."""
    return CachedStream(
        track_id=key,
        video_url=match.video_url,
        stream_url=extraction.stream_url,
        expires_at=stream_expiry(extraction.stream_url, now, fallback_ttl_s),
        resolved_at=now,
        last_access=now,
        title=match.title,
        duration_s=match.duration_s,
        score=match.score,
        http_headers=extraction.http_headers,
    )


def reextracted(
    cached: CachedStream,
    extraction: Extraction,
    now: float,
    fallback_ttl_s: float,
    last_access: float,
) -> CachedStream:
    """A cached entry with a fresh stream URL for its video (the match itself is kept)."""
    return replace(
        cached,
        stream_url=extraction.stream_url,
        expires_at=stream_expiry(extraction.stream_url, now, fallback_ttl_s),
        http_headers=extraction.http_headers,
        resolved_at=now,
        last_access=last_access,
    )


_FAILURE_ERRORS: dict[str, Callable[[], UserFacingError]] = {
    "not_found": lambda: NotFound("Spotify has no track with this id."),
    "no_match": lambda: NoMatch("No YouTube video matches this track."),
    "extraction_failed": lambda: ExtractionFailed(
        "Could not get an audio stream for this track; try again in a few minutes."
    ),
    "search_failed": lambda: SearchFailed("YouTube search is not answering; try again later."),
}


def failure_reason(exc: ResolveError) -> str:
    """The `Failure.reason` a failed resolution is cached under."""
    if isinstance(exc, NoMatch):
        return "no_match"
    if isinstance(exc, ExtractionFailed):
        return "extraction_failed"
    return "search_failed"


def failure_error(reason: str) -> UserFacingError:
    """The error a cached `Failure` answers with while it lasts (an unknown reason: a search's)."""
    return _FAILURE_ERRORS.get(reason, _FAILURE_ERRORS["search_failed"])()

"""What an index run planned and what came of each track: the records the indexer returns and
the command line prints (core/indexer.py does the planning and the running)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import (
    ExtractionFailed,
    NoMatch,
    Overloaded,
    ResolveTimeout,
    SearchFailed,
    UserFacingError,
)
from core.tracks import TrackInfo


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


@dataclass(frozen=True)
class PlannedPlaylist:
    id: str
    name: str
    track_count: int
    owner_user_id: int | None  # whose token read it; None: the app's token (public only)


@dataclass(frozen=True)
class SkippedPlaylist:
    id: str
    name: str
    reason: str


@dataclass(frozen=True)
class IndexPlan:
    playlists: tuple[PlannedPlaylist, ...]
    tracks: tuple[TrackInfo, ...]  # distinct, in playlist order
    skipped: tuple[SkippedPlaylist, ...] = ()  # a user's playlists Spotify will not let us read


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


def track_names(tracks: Iterable[TrackInfo], limit: int = 5) -> str:
    """A short list of track names for a summary line, e.g. `A — x, B — y and 3 more`."""
    listed = list(tracks)
    shown = ", ".join(t.title_line for t in listed[:limit])
    return f"{shown} and {len(listed) - limit} more" if len(listed) > limit else shown

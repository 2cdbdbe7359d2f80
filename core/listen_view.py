"""What a listen page is told: the view of one session, and the pure decisions behind it
(which host snapshot changes a browser must act on, who counts as "on Spotify").

core/listen.py keeps the machinery that produces these views (tokens, feeds, subscriptions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.tracks import TrackInfo
from storage.records import HostSnapshot, ListenerStatus, Session


class Change(StrEnum):
    """Why subscribers were woken."""

    TRACK = "track"
    PAUSE = "pause"
    RESUME = "resume"
    SEEK = "seek"
    STREAM = "stream"  # the stream finished resolving (or failed)
    PEOPLE = "people"  # host, listeners or browser audience changed
    ENDED = "ended"


def playback_change(
    before: HostSnapshot | None, after: HostSnapshot | None, threshold_ms: int
) -> Change | None:
    """What a browser must do about a new host snapshot; None when extrapolation covers it."""
    if before is None and after is None:
        return None
    if before is None or after is None or before.track_id != after.track_id:
        return Change.TRACK
    if before.is_playing != after.is_playing:
        return Change.RESUME if after.is_playing else Change.PAUSE
    expected = before.position_ms
    if before.is_playing:
        expected += round((after.at - before.at) * 1000)
    if abs(after.position_ms - expected) > threshold_ms:
        return Change.SEEK
    return None


class StreamStatus(StrEnum):
    NONE = "none"  # nothing is playing
    RESOLVING = "resolving"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class StreamState:
    status: StreamStatus = StreamStatus.NONE
    url: str | None = None
    expires_at: float = 0.0
    message: str = ""  # user-safe, for FAILED


# Listeners the page may call "on Spotify": not those Spotify refuses to command (no Premium)
# or whose link died; they are, at best, on this very page.
NOT_ON_SPOTIFY = frozenset({ListenerStatus.PREMIUM_REQUIRED, ListenerStatus.NEEDS_RELINK})


def on_spotify(session: Session) -> tuple[int, ...]:
    return tuple(
        uid for uid, state in session.listeners.items() if state.status not in NOT_ON_SPOTIFY
    )


@dataclass(frozen=True)
class ListenView:
    """What every browser on one session's page is told; `version` grows with each change."""

    guild_id: int
    host_user_id: int
    listener_ids: tuple[int, ...]
    snapshot: HostSnapshot | None
    track: TrackInfo | None = None
    stream: StreamState = field(default_factory=StreamState)
    audience: int = 0
    ended: bool = False
    change: Change | None = None
    version: int = 0

"""What the voice channel should play, given the host's presence: plain decisions, no Discord.

The bot's voice player (bot/voice_guild.py) asks `decide()` every time the host's presence changes
and on a slow tick; it answers "keep going", "go quiet" or "play this track from here". The
host's state comes from the `PresenceBoard` (Discord's PRESENCE_UPDATE, no Spotify call): the
track id, title, artists, album, duration and position in a Spotify presence are enough to
resolve the audio (`track_from_presence`) and to follow skips, seeks, pauses and resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.presence import Listening, Presence
from core.tracks import TrackInfo
from storage.records import HostSnapshot

# A presence only moves when the host changes something, so a drift this large means a seek
# (Spotify's presence carries ms timestamps; what we play is on a 20 ms grid).
SEEK_TOLERANCE_MS = 750


def track_from_presence(listening: Listening) -> TrackInfo:
    """The track a host's Spotify presence names, as resolver metadata.

    This is the one place presence metadata becomes `TrackInfo`. It is trusted: Discord relays
    it from Spotify for the host's own account (server-side data, not a client's request
    body), so the resolver may match on it without asking Spotify.
    """
    return TrackInfo(
        id=listening.track_id,
        name=listening.title,
        artists=listening.artists,
        album=listening.album,
        duration_ms=listening.duration_ms or 0,
    )


@dataclass(frozen=True)
class HostPlayback:
    """The host's playback as the presence tells it: playing `listening` from a position."""

    listening: Listening
    position_ms: int  # at monotonic `at`
    at: float

    def position_at(self, now: float) -> int:
        position = self.position_ms + int((now - self.at) * 1000)
        duration = self.listening.duration_ms
        return max(0, min(position, duration) if duration else position)


def host_playback(presence: Presence | None) -> HostPlayback | None:
    """The host's playback, or None when they are not playing (or Discord shows nothing)."""
    if presence is None or presence.listening is None:
        return None
    return HostPlayback(
        presence.listening, presence.listening.position_ms or 0, presence.received_at
    )


def playback_from_snapshot(
    snapshot: HostSnapshot, track: TrackInfo, wall_now: float, mono_now: float
) -> HostPlayback | None:
    """The sync engine's stored host snapshot as a `HostPlayback` (for a host whose presence
    Discord does not show); None when paused. `snapshot.at` is wall-clock time."""
    if not snapshot.is_playing or snapshot.track_id != track.id:
        return None
    listening = Listening(
        track.id, track.name, track.artists, track.album, track.duration_ms or None, None
    )
    return HostPlayback(listening, snapshot.position_ms, mono_now - (wall_now - snapshot.at))


@dataclass(frozen=True)
class Playing:
    """What the voice channel is playing: `track_id` from `start_ms`, begun at monotonic
    `started_at` (when the audio player's 20 ms grid was anchored)."""

    track_id: str
    start_ms: int
    started_at: float

    def position_at(self, now: float) -> int:
        return self.start_ms + int((now - self.started_at) * 1000)


@dataclass(frozen=True)
class Stay:
    """Nothing to change."""


@dataclass(frozen=True)
class Quiet:
    """Stop the audio: the host paused or stopped."""


@dataclass(frozen=True)
class Play:
    """(Re)start the audio: `track` at the host's position (the player adds its start-up)."""

    track: TrackInfo
    host: HostPlayback


Action = Stay | Quiet | Play


def decide(
    playing: Playing | None,
    host: HostPlayback | None,
    now: float,
    *,
    skipped: str | None = None,
    tolerance_ms: int = SEEK_TOLERANCE_MS,
) -> Action:
    """What to do now. `skipped` is a track id whose stream could not be found (not retried
    until the host moves on)."""
    if host is None:
        return Quiet() if playing is not None else Stay()
    track_id = host.listening.track_id
    if track_id == skipped:
        return Quiet() if playing is not None else Stay()
    if playing is None or playing.track_id != track_id:
        return Play(track_from_presence(host.listening), host)
    if abs(host.position_at(now) - playing.position_at(now)) > tolerance_ms:
        return Play(track_from_presence(host.listening), host)  # a seek
    return Stay()

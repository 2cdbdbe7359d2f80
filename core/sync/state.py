"""What a Spotify player is doing, as a value that can be extrapolated in time.

One type serves the host observation, a listener observation and what we believe a listener's
player does after our last command: all three are "track T at position P at local time AT,
playing or not", and every sync decision compares two of them at the same instant.

Times are seconds of the engine's monotonic clock (`core.sync.clock.Clock`); a snapshot stores
wall time, converted on the way in and out. `at` is never Spotify's
`timestamp` field (that is when the *state* last changed on Spotify's side, not when it was
fetched): for an observation it is the midpoint of our request, the best estimate of when
Spotify computed `progress_ms` given a symmetric network path.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from storage.records import HostSnapshot


@dataclass(frozen=True)
class PlayerState:
    track_id: str | None  # None: nothing playing (204), or an item we cannot mirror (ad, episode)
    position_ms: int
    is_playing: bool
    at: float  # local time at which the player was at `position_ms`
    duration_ms: int = 0  # 0: unknown, no clamping at the end
    device_id: str | None = None
    uncertainty_ms: int = 0  # half the round trip of the read: how far `at` may be off

    @classmethod
    def observed(
        cls,
        *,
        track_id: str | None,
        progress_ms: int,
        is_playing: bool,
        requested_at: float,
        answered_at: float,
        duration_ms: int = 0,
        device_id: str | None = None,
    ) -> PlayerState:
        """A read of `GET /me/player` timed locally: progress holds at the request midpoint."""
        rtt = max(0.0, answered_at - requested_at)
        return cls(
            track_id=track_id,
            position_ms=max(0, progress_ms),
            is_playing=is_playing and track_id is not None,
            at=requested_at + rtt / 2,
            duration_ms=max(0, duration_ms),
            device_id=device_id,
            uncertainty_ms=round(rtt * 500),
        )

    @classmethod
    def idle(cls, at: float) -> PlayerState:
        """Nothing playing (the API answered 204)."""
        return cls(track_id=None, position_ms=0, is_playing=False, at=at)

    @property
    def has_track(self) -> bool:
        return self.track_id is not None

    @property
    def track_uri(self) -> str | None:
        return f"spotify:track:{self.track_id}" if self.track_id else None

    def position_at(self, at: float) -> int:
        """Where the player is at local time `at`: it advances only while playing, and stops at
        the end of the track (what comes next is unknown until observed)."""
        position = self.position_ms
        if self.is_playing:
            position += round((at - self.at) * 1000)
        if self.duration_ms:
            position = min(position, self.duration_ms)
        return max(0, position)

    def remaining_at(self, at: float) -> float | None:
        """Seconds until the track ends at local time `at` (None when the duration is unknown)."""
        if not self.duration_ms or not self.has_track:
            return None
        return (self.duration_ms - self.position_at(at)) / 1000

    def moved_to(self, at: float) -> PlayerState:
        """The same state re-expressed at another instant (position advanced if playing)."""
        return replace(self, position_ms=self.position_at(at), at=at)

    def to_snapshot(self, wall_at: float, host_user_id: int | None = None) -> HostSnapshot:
        """Stored with wall time `wall_at` (this state's `at` on the wall clock) and the host
        it was read from, so a snapshot written across a hand-over is not taken for the new
        host's."""
        return HostSnapshot(
            track_id=self.track_id,
            position_ms=self.position_ms,
            is_playing=self.is_playing,
            at=wall_at,
            duration_ms=self.duration_ms,
            device_id=self.device_id,
            host_user_id=host_user_id,
        )

    @classmethod
    def from_snapshot(cls, snapshot: HostSnapshot, at: float) -> PlayerState:
        """`at`: the snapshot's wall time on this process's monotonic clock."""
        return cls(
            track_id=snapshot.track_id,
            position_ms=snapshot.position_ms,
            is_playing=snapshot.is_playing,
            at=at,
            duration_ms=snapshot.duration_ms,
            device_id=snapshot.device_id,
        )

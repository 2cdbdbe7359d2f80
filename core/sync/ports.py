"""What the sync engine needs from the outside world, as narrow Protocols.

`PlayerClient` is the slice of `core.spotify.client.SpotifyClient` the engine calls (that class
satisfies it structurally; see SPOTIFY_API.md). What the bot supplies to show the engine's work
in Discord is `core.sync.reporter.Announcer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from core.spotify.quota import CallPriority
from core.sync.state import PlayerState
from core.tracks import TrackInfo


class DeviceLike(Protocol):
    @property
    def id(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def is_restricted(self) -> bool: ...


class PlaybackLike(Protocol):
    """The shape of `core.spotify.models.Playback`."""

    @property
    def track(self) -> TrackInfo | None: ...
    @property
    def progress_ms(self) -> int: ...
    @property
    def is_playing(self) -> bool: ...
    @property
    def device(self) -> DeviceLike | None: ...
    @property
    def requested_at(self) -> float: ...
    @property
    def answered_at(self) -> float: ...


class PlayerClient(Protocol):
    """Every call takes the quota governor's `priority` (core/spotify/quota.py)."""

    async def playback(
        self, discord_user_id: int, *, priority: CallPriority = ...
    ) -> PlaybackLike | None: ...
    async def play(
        self,
        discord_user_id: int,
        track_uri: str | None,
        position_ms: int | Callable[[], int] | None = None,
        device_id: str | None = None,
        *,
        priority: CallPriority = ...,
    ) -> None:
        """A callable position is called right before the request is sent (in the client's
        worker thread); whatever it raises is raised here, and nothing is sent."""
        ...

    async def pause(
        self,
        discord_user_id: int,
        device_id: str | None = None,
        *,
        priority: CallPriority = ...,
        guard: Callable[[], None] | None = None,
    ) -> None: ...
    async def seek(
        self,
        discord_user_id: int,
        position_ms: int | Callable[[], int],
        device_id: str | None = None,
        *,
        priority: CallPriority = ...,
    ) -> None: ...
    async def devices(
        self, discord_user_id: int, *, priority: CallPriority = ...
    ) -> Sequence[DeviceLike]: ...


def observation(
    playback: PlaybackLike | None, requested_at: float, answered_at: float
) -> PlayerState:
    """A player read as a `PlayerState`; `None` (204, nothing playing) becomes idle.

    The request times given here are the caller's own; a Playback carries its own, which win
    (they were taken closest to the wire, inside the client).
    """
    if playback is None:
        return PlayerState.idle(requested_at + max(0.0, answered_at - requested_at) / 2)
    track = playback.track
    return PlayerState.observed(
        track_id=track.id if track else None,
        progress_ms=playback.progress_ms,
        is_playing=playback.is_playing,
        requested_at=playback.requested_at,
        answered_at=playback.answered_at,
        duration_ms=track.duration_ms if track else 0,
        device_id=playback.device.id if playback.device else None,
    )


def pick_device(devices: Sequence[DeviceLike]) -> str | None:
    """The device to target when a listener has no active one: active first, then a computer
    or phone (where a person is likely to be listening), never a restricted one."""
    usable = [d for d in devices if d.id and not d.is_restricted]
    if not usable:
        return None
    usable.sort(
        key=lambda d: (not d.is_active, d.type.lower() not in ("computer", "smartphone"), d.name)
    )
    return usable[0].id

"""What the Spotify client layer returns: small frozen records parsed from Web API JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.tracks import TrackInfo

JSON = dict[str, Any]


@dataclass(frozen=True)
class Device:
    id: str | None
    name: str
    type: str
    is_active: bool
    is_restricted: bool


@dataclass(frozen=True)
class Playback:
    track: TrackInfo | None
    progress_ms: int
    is_playing: bool
    device: Device | None
    requested_at: float  # local clock when the request was sent
    answered_at: float  # local clock when the answer arrived (Spotify's `timestamp` is not that)


@dataclass(frozen=True)
class Profile:
    id: str
    display_name: str


@dataclass(frozen=True)
class PlaylistRef:
    id: str
    name: str
    track_count: int
    owner_id: str = ""
    collaborative: bool = False

    def readable_by(self, spotify_user_id: str) -> bool:
        """Development mode reads items only of playlists the user owns or collaborates on."""
        return self.collaborative or self.owner_id == spotify_user_id


def parse_track(item: JSON | None) -> TrackInfo | None:
    """A TrackInfo from a TrackObject; None for episodes, local files and missing items."""
    if not item or item.get("type", "track") != "track" or not item.get("id"):
        return None
    album = item.get("album") or {}
    images = album.get("images") or []
    return TrackInfo(
        id=item["id"],
        name=item.get("name") or "",
        artists=tuple(a.get("name") or "" for a in item.get("artists") or []),
        album=album.get("name") or "",
        duration_ms=int(item.get("duration_ms") or 0),
        isrc=(item.get("external_ids") or {}).get("isrc") or "",
        album_art_url=images[0].get("url", "") if images else "",
    )


def parse_device(data: JSON) -> Device:
    return Device(
        id=data.get("id"),
        name=data.get("name") or "",
        type=data.get("type") or "",
        is_active=bool(data.get("is_active")),
        is_restricted=bool(data.get("is_restricted")),
    )


def parse_playback(data: JSON | None, requested_at: float, answered_at: float) -> Playback | None:
    """None when nothing is playing (204 or no item and no device)."""
    if not data:
        return None
    device = data.get("device")
    return Playback(
        track=parse_track(data.get("item")),
        progress_ms=int(data.get("progress_ms") or 0),
        is_playing=bool(data.get("is_playing")),
        device=parse_device(device) if device else None,
        requested_at=requested_at,
        answered_at=answered_at,
    )


def parse_playlist(data: JSON) -> PlaylistRef:
    # Spotify renamed `tracks` to `items` in 2025; read either.
    ref = data.get("items") or data.get("tracks") or {}
    return PlaylistRef(
        id=data["id"],
        name=data.get("name") or "",
        track_count=int(ref.get("total") or 0),
        owner_id=str((data.get("owner") or {}).get("id") or ""),
        collaborative=bool(data.get("collaborative")),
    )

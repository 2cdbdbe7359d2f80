"""Track metadata as the rest of the code sees it, whatever it came from (PWA body, Spotify)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import UserFacingError

# Spotify ids are 22 characters of base62.
TRACK_ID = re.compile(r"^[0-9A-Za-z]{22}$")


def is_track_id(value: str) -> bool:
    return bool(TRACK_ID.fullmatch(value))


class InvalidTrackId(UserFacingError):
    """A request named no track, or not a Spotify track id: the client's mistake."""

    http_status = 400


def check_track_id(value: object) -> str:
    """`value` if it is a Spotify track id, else InvalidTrackId saying what is wrong with it
    (one check for every entry point: request bodies, URL paths, the resolver)."""
    if value is None or value == "":
        raise InvalidTrackId("Missing track id.")
    if not isinstance(value, str):
        raise InvalidTrackId("'id' must be a string (a Spotify track id).")
    if not is_track_id(value):
        raise InvalidTrackId(
            "Invalid track id: expected 22 letters and digits (a Spotify track id)."
        )
    return value


@dataclass(frozen=True)
class TrackInfo:
    id: str
    name: str
    artists: tuple[str, ...]
    album: str = ""
    duration_ms: int = 0
    isrc: str = ""
    album_art_url: str = ""

    @property
    def uri(self) -> str:
        return f"spotify:track:{self.id}"

    @property
    def title_line(self) -> str:
        return f"{', '.join(self.artists)} — {self.name}" if self.artists else self.name

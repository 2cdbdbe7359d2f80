"""Track metadata as the rest of the code sees it, whatever it came from (PWA body, Spotify)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Spotify ids are 22 characters of base62.
TRACK_ID = re.compile(r"^[0-9A-Za-z]{22}$")


def is_track_id(value: str) -> bool:
    return bool(TRACK_ID.fullmatch(value))


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

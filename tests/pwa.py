"""The existing PWA client's request, exactly as it sends it (shared by tests and benchmarks)."""

from __future__ import annotations

from typing import Any

from tests.fakes.spotify_catalog import FakeTrack
from tests.fakes.youtube import FakeYouTube

PWA_ORIGIN = "https://pwa.example"
TRACK_ID = "4PTG3Z6ehGkBFwjybzWkR8"

# Spotify's own record of the track the PWA's body describes: the resolver matches on this.
PWA_TRACK = FakeTrack(
    id=TRACK_ID,
    name="Never Gonna Give You Up",
    artists=("Rick Astley",),
    album="Whenever You Need Somebody",
    duration_ms=213_573,
    isrc="GBARL9300135",
    album_id="6XhjNHCyCDyyGJRM5mg40G",
    artist_ids=("0gxyHStUsqpMadRV0Di1Qt",),
)


def track_body() -> dict[str, Any]:
    """A SpotifyTrack object as the PWA POSTs it to /song and /download_song."""
    return {
        "id": TRACK_ID,
        "name": "Never Gonna Give You Up",
        "artistNames": ["Rick Astley"],
        "albumName": "Whenever You Need Somebody",
        "duration": 213573,
        "date": "1987-11-12",
        "trackNumber": 1,
        "trackCount": 10,
        "url": f"https://open.spotify.com/track/{TRACK_ID}",
        "isrc": "GBARL9300135",
        "popularity": 77,
        "albumId": "6XhjNHCyCDyyGJRM5mg40G",
        "artistId": "0gxyHStUsqpMadRV0Di1Qt",
        "albumType": "album",
        "albumArtist": "Rick Astley",
        "coverImg": "https://i.scdn.co/image/ab67616d0000b273baf89eb11ec7c657805d2da0",
    }


def add_pwa_video(youtube: FakeYouTube, video_id: str) -> None:
    """The PWA's track as a video on the fake YouTube, under `video_id`."""
    youtube.add_video(
        video_id,
        PWA_TRACK.name,
        list(PWA_TRACK.artists),
        PWA_TRACK.duration_ms // 1000,
        album=PWA_TRACK.album,
        isrc=PWA_TRACK.isrc,
    )

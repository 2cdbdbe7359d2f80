"""Reads the PWA's SpotifyTrack request body into a TrackInfo, with a clear 4xx when it can't.

The PWA sends every field it knows (`id`, `name`, `artistNames`, `albumName`, `duration` in ms,
`isrc`, `coverImg`, `date`, `trackNumber`, ...), several of them missing, null or empty. Only the
fields the resolver uses are checked; the rest are ignored so the client may add fields freely.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.web.inputs import BadRequest, check_text, finite_number
from bot.web.services import BODY_TIMEOUT
from core.errors import UserFacingError
from core.tracks import TrackInfo, check_track_id


@dataclass(frozen=True)
class SongRequest:
    track: TrackInfo
    force: bool = False  # re-match the video even when one is cached


MAX_ARTISTS = 50


class BodyTooSlow(UserFacingError):
    http_status = 408


async def read_body(request: web.Request) -> bytes:
    """The whole body; one trickling in is cut off at the app's deadline (408).

    A body over the app's client_max_size raises HTTPRequestEntityTooLarge here, which the
    error middleware turns into a plain 413.
    """
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT]):
            return await request.read()
    except TimeoutError:
        raise BodyTooSlow("The request body took too long to arrive.") from None


def parse_song_request(raw: bytes) -> SongRequest:
    if not raw.strip():
        raise BadRequest("Empty request body: send the track as a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadRequest(
            "Request body is not valid JSON: send the track as a JSON object."
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object describing the track.")

    track_id = check_track_id(body.get("id"))
    name = _text(body, "name")
    if not name:
        raise BadRequest("Missing track name.")
    artists = _artists(body.get("artistNames"))
    duration = body.get("duration")
    if duration is None or duration == "":
        duration_ms = 0
    else:
        number = finite_number(duration)
        if number is None or number < 0:
            raise BadRequest("'duration' must be a non-negative number of milliseconds.")
        duration_ms = int(number)
    force = body.get("force", False)
    if force is None:
        force = False
    if not isinstance(force, bool):
        raise BadRequest("'force' must be true or false.")

    track = TrackInfo(
        id=track_id,
        name=name,
        artists=artists,
        album=_text(body, "albumName"),
        duration_ms=duration_ms,
        isrc=_text(body, "isrc"),
        album_art_url=_text(body, "coverImg"),
    )
    return SongRequest(track=track, force=force)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string.")
    return check_text(value, key).strip()


def _artists(value: object) -> tuple[str, ...]:
    if value is None or value == []:
        raise BadRequest("Missing artists: 'artistNames' must list at least one artist.")
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise BadRequest("'artistNames' must be a list of strings.")
    if len(value) > MAX_ARTISTS:
        raise BadRequest(f"'artistNames' lists too many artists (at most {MAX_ARTISTS}).")
    artists = tuple(check_text(a, "artistNames").strip() for a in value if a.strip())
    if not artists:
        raise BadRequest("Missing artists: 'artistNames' must list at least one artist.")
    return artists

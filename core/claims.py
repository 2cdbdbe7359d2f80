"""Claims: a client's own description of a track (the PWA's `/song` body) and how far it goes.

Spotify's metadata is the authority for what a track id plays (#11 "trusted metadata"): the
track a host's player reported, or one budgeted app-token lookup, kept in `KnownTracks`. A
client's body is only a claim: it is searched only while Spotify cannot be asked, and that match
is kept under `claim_key(claimed)` (`id~digest`), shared only by requests carrying exactly the
same metadata, never under the bare id. Claim entries have a small bound of their own
(`ClaimEntries`), since a client creates one per body variation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from core.errors import NotFound, SpotifyError
from core.tracks import TrackInfo
from storage.records import CachedStream

__all__ = [
    "ClaimEntries",
    "KnownTracks",
    "claim_key",
    "is_claim",
    "is_stream_key",
    "resolve_claimed",
]

log = logging.getLogger(__name__)

_CLAIM_KEY = re.compile(r"[0-9A-Za-z]{22}(~[0-9a-f]{16})?")

# The resolver's work for a key: (key, trusted metadata or None, force) -> the stream.
Resolve = Callable[[str, TrackInfo | None, bool], Awaitable[CachedStream]]


def claim_key(claimed: TrackInfo) -> str:
    """The cache key of a match made from a client's own metadata (`id~digest`): only requests
    carrying exactly that metadata share it; it never stands for the bare id."""
    described = [claimed.name, list(claimed.artists), claimed.album, claimed.duration_ms]
    digest = hashlib.sha256(json.dumps([*described, claimed.isrc]).encode()).hexdigest()
    return f"{claimed.id}~{digest[:16]}"


def is_stream_key(value: str) -> bool:
    """A track id, or a claim key made by `claim_key`."""
    return _CLAIM_KEY.fullmatch(value) is not None


def is_claim(key: str) -> bool:
    """Whether a stream key is a claim key (not a bare track id)."""
    return "~" in key


class KnownTracks:
    """Spotify's own metadata per track id (it never changes), least recently used first."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tracks: OrderedDict[str, TrackInfo] = OrderedDict()

    def get(self, track_id: str) -> TrackInfo | None:
        return self._tracks.get(track_id)

    def learn(self, track: TrackInfo) -> None:
        self._tracks[track.id] = track
        self._tracks.move_to_end(track.id)
        while len(self._tracks) > self._limit:
            self._tracks.popitem(last=False)


class ClaimEntries:
    """The claim keys this process wrote, least recently used first: the only cache entries a
    client's body can create, so they get a small bound of their own (storage's LRU bound is
    for the real ones, which the claims would otherwise evict)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def touch(self, key: str) -> None:
        if key in self._keys:
            self._keys.move_to_end(key)

    def add(self, key: str) -> list[str]:
        """Count `key` as just written; the keys beyond the bound, for the caller to delete."""
        self._keys[key] = None
        self._keys.move_to_end(key)
        evicted = []
        while len(self._keys) > self._limit:
            evicted.append(self._keys.popitem(last=False)[0])
        return evicted


async def resolve_claimed(
    resolve: Resolve, known: KnownTracks, claimed: TrackInfo, force: bool
) -> CachedStream:
    """The stream for a track described by a client: under the bare id with Spotify's metadata
    (known, or looked up by `resolve`); only when Spotify cannot be asked (quota, outage, the
    lookup budget) under the claim's own key with the client's metadata."""
    try:
        return await resolve(claimed.id, known.get(claimed.id), force)
    except NotFound:
        raise  # Spotify answered: there is no such track, whatever the body says
    except SpotifyError as exc:
        log.info(
            "Spotify metadata of %s unavailable (%s); matching the client's",
            claimed.id,
            exc.message,
        )
    return await resolve(claim_key(claimed), claimed, force)

"""The resolver's front cache: the most recently used stream entries, in process memory.

A hot track is answered without a storage round trip. Storage stays the source of truth; the
copy in memory is only served while (a) its stream URL is still usable (the same minimum
remaining life as a storage hit) and (b) it was read or written by this process less than
`ttl_s` ago. Every write this process makes (resolution, re-extraction, refresh, forced
re-match) replaces the copy; a forced request never reads it (while the re-match runs, storage
holds the same entry, so other requests get the same answer from either). What (b) bounds is the
staleness of changes made elsewhere: another process's forced re-match (Redis) or an entry
evicted or deleted in storage may still be served from here for up to `ttl_s`. That is
acceptable because such a URL still plays (it is checked for expiry like any hit), and the
deferred access-time writes never resurrect an evicted entry (both backends only touch entries
that exist), so storage's bound holds.
"""

from __future__ import annotations

from collections import OrderedDict

from storage.records import CachedStream

__all__ = ["FrontCache", "still_usable"]


def still_usable(entry: CachedStream, now: float, min_validity_s: float) -> bool:
    """Whether a cached stream URL may still be handed out: it has at least `min_validity_s`
    seconds left (the resolver's and the indexer's notion of "cached" must agree)."""
    return bool(entry.stream_url) and entry.expires_at - now > min_validity_s


class FrontCache:
    def __init__(self, entries: int, ttl_s: float, min_validity_s: float) -> None:
        self._max = entries
        self._ttl_s = ttl_s
        self._min_validity_s = min_validity_s
        # key -> (entry, served from memory until); least recently used first.
        self._entries: OrderedDict[str, tuple[CachedStream, float]] = OrderedDict()

    def get(self, key: str, now: float) -> CachedStream | None:
        """The entry in memory if it may still be served without asking storage."""
        remembered = self._entries.get(key)
        if remembered is None:
            return None
        entry, until = remembered
        if now < until and still_usable(entry, now, self._min_validity_s):
            self._entries.move_to_end(key)
            return entry
        del self._entries[key]
        return None

    def remember(self, entry: CachedStream, now: float) -> None:
        """Keep (or replace) an entry just read from or written to storage."""
        if self._max <= 0:
            return
        known = self._entries.get(entry.track_id)
        if known is not None and known[0].resolved_at > entry.resolved_at:
            # A storage read that started before this process wrote a newer resolution.
            entry = known[0]
        self._entries[entry.track_id] = (entry, now + self._ttl_s)
        self._entries.move_to_end(entry.track_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

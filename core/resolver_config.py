"""The stream resolver's settings and counters (core/resolver.py)."""

from __future__ import annotations

from dataclasses import dataclass

from core.budget import BucketLimit

__all__ = ["CLAIM_SEARCHES", "LOOKUPS", "ResolverConfig", "ResolverStats"]

LOOKUPS = BucketLimit(burst=20, per_s=1 / 30)  # ~2,900 a day at most, at BACKGROUND priority
CLAIM_SEARCHES = BucketLimit(burst=10, per_s=1 / 30)


@dataclass(frozen=True)
class ResolverConfig:
    workers: int = 4  # threads running spotDL / yt-dlp
    max_in_flight: int = 256  # distinct tracks resolving at once before Overloaded
    timeout_s: float = 45.0  # a caller waits this long (the resolution itself carries on)
    min_validity_s: float = 120.0  # a stream URL with less time left is treated as expired
    refresh_ahead_s: float = 1800.0  # a hit expiring within this is refreshed in the background
    fallback_ttl_s: float = 3600.0  # lifetime of a stream URL without an `expire` parameter
    failure_ttl_s: float = 120.0  # negative cache
    touch_interval_s: float = 10.0  # how often deferred last-access times are written
    refresh_interval_s: float = 60.0  # how often the refresher looks for expiring entries
    refresh_recent_s: float = 6 * 3600.0  # "recently used": accessed within this
    refresh_batch: int = 16  # entries re-extracted per refresher pass
    front_entries: int = 1024  # entries kept in process memory (0: every hit reads storage)
    front_ttl_s: float = 30.0  # how long an entry in memory is served without asking storage
    force_cooldown_s: float = 600.0  # a track is re-matched on request at most this often
    known_tracks: int = 10_000  # Spotify's metadata of this many tracks is kept in memory
    # Spotify lookups any client can trigger (a new id sent to /song or /v1/tracks/{id}): one
    # budget for all clients together, so many addresses cannot drain the daily Spotify quota.
    lookups: BucketLimit = LOOKUPS
    # Searches from a client's own metadata (only while Spotify cannot be asked): all clients.
    claim_searches: BucketLimit = CLAIM_SEARCHES
    claim_entries: int = 64  # matches kept under claim keys (`id~digest`) by this process
    reextract_cooldown_s: float = 60.0  # a refused stream URL is re-extracted at most this often


@dataclass
class ResolverStats:
    hits: int = 0  # served from the cache
    memory_hits: int = 0  # of the hits, those served from the in-process front cache
    misses: int = 0  # had to wait for a resolution (including joiners)
    coalesced: int = 0  # of the misses, those that joined a resolution already running
    negative_hits: int = 0  # answered from the negative cache
    searches: int = 0
    extractions: int = 0
    refreshes: int = 0  # background re-extractions (included in extractions)
    failures: int = 0  # resolutions that ended in NoMatch / ExtractionFailed / SearchFailed

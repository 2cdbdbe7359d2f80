"""The resolver's background work: deferred last-access writes and the refresher.

Cache hits do not write: their access times are collected here and written in one batch every
`touch_interval_s`. Every `refresh_interval_s` the refresher re-extracts recently used entries
whose stream URLs expire soon, so a listener rarely waits for yt-dlp. Claim entries (a client's
own metadata, core/claims.py) are never kept alive this way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from core.claims import is_claim
from core.resolver_config import ResolverConfig
from storage.base import LeaseStore, StreamCache
from storage.records import CachedStream

__all__ = ["Refresh", "Refresher"]

log = logging.getLogger(__name__)

REFRESH_LEASE = "resolver-refresh"

# Starts a background re-extraction of an entry (None when it cannot start now).
Refresh = Callable[[CachedStream], "asyncio.Task[CachedStream] | None"]


class Refresher:
    def __init__(
        self,
        cache: StreamCache,
        config: ResolverConfig,
        clock: Callable[[], float],
        refresh: Refresh,
        *,
        leases: LeaseStore | None = None,
    ) -> None:
        self._cache = cache
        self._leases = leases
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._config = config
        self._clock = clock
        self._refresh = refresh
        self._accessed: dict[str, float] = {}

    def touch(self, key: str, at: float) -> None:
        """Record an access, written with the next flush."""
        self._accessed[key] = at

    def last_access(self, key: str) -> float:
        """The access not yet written (0.0 when none)."""
        return self._accessed.get(key, 0.0)

    def timers(self) -> list[asyncio.Task[None]]:
        """Start the two timers; the caller cancels them."""
        config = self._config
        return [
            asyncio.create_task(_every(config.touch_interval_s, self.flush_access)),
            asyncio.create_task(_every(config.refresh_interval_s, self.refresh_turn)),
        ]

    async def flush_access(self) -> None:
        """Write the last-access times collected since the previous flush, in one batch."""
        if not self._accessed:
            return
        batch, self._accessed = self._accessed, {}
        try:
            await self._cache.touch_streams(batch)
        except Exception:
            log.warning("could not write %d access times; keeping them", len(batch), exc_info=True)
            for key, at in batch.items():
                self._accessed[key] = max(at, self._accessed.get(key, 0.0))

    async def refresh_turn(self) -> int:
        """The timer's pass: `refresh_expiring` if this process takes the refresher's lease.

        Every process of a deployment runs this timer over the same shared cache, so without
        the lease each would re-extract the same batch (N processes, N times the yt-dlp work
        and N times the exposure to YouTube's rate limits). The lease is held for one interval
        and never released, so passes anywhere are at least an interval apart.
        """
        if self._leases is not None and not await self._leases.acquire_lease(
            REFRESH_LEASE, self._holder, self._config.refresh_interval_s
        ):
            return 0
        return await self.refresh_expiring()

    async def refresh_expiring(self) -> int:
        """One refresher pass: re-extract recently used entries expiring soon; how many."""
        await self.flush_access()
        config = self._config
        now = self._clock()
        entries = await self._cache.streams_to_refresh(
            expiring_before=now + config.refresh_ahead_s,
            accessed_since=now - config.refresh_recent_s,
            # Claim entries are skipped: ask for enough that they cannot crowd real ones out.
            limit=config.refresh_batch + config.claim_entries,
        )
        entries = [e for e in entries if not is_claim(e.track_id)][: config.refresh_batch]
        tasks = [t for e in entries if (t := self._refresh(e)) is not None]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        refreshed = sum(1 for r in results if isinstance(r, CachedStream))
        if entries:
            log.info("refreshed %d of %d expiring stream URLs", refreshed, len(entries))
        return refreshed


async def _every(interval: float, work: Callable[[], Awaitable[object]]) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await work()
        except Exception:  # a storage blip must not end the timer
            log.exception("resolver background task failed; retrying next interval")

"""TEMPORARY in-memory StreamCache until the SQLite/Redis backends land on main.

Every call yields to the loop once, as real storage I/O does, so races between requests that
await storage show up here too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace

from storage.records import CachedStream, Failure


class MemoryStreamCache:
    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self.streams: dict[str, CachedStream] = {}
        self.failures: dict[str, Failure] = {}
        self.writes = 0

    async def get_stream(self, track_id: str) -> CachedStream | None:
        await asyncio.sleep(0)
        return self.streams.get(track_id)

    async def put_stream(self, entry: CachedStream) -> None:
        await asyncio.sleep(0)
        self.writes += 1
        self.streams[entry.track_id] = entry
        while len(self.streams) > self.max_streams:
            oldest = min(self.streams.values(), key=lambda e: e.last_access)
            del self.streams[oldest.track_id]

    async def touch_streams(self, accessed: Mapping[str, float]) -> None:
        await asyncio.sleep(0)
        self.writes += 1
        for track_id, at in accessed.items():
            if (e := self.streams.get(track_id)) is not None:
                self.streams[track_id] = replace(e, last_access=max(at, e.last_access))

    async def delete_stream(self, track_id: str) -> bool:
        await asyncio.sleep(0)
        return self.streams.pop(track_id, None) is not None

    async def count_streams(self) -> int:
        await asyncio.sleep(0)
        return len(self.streams)

    async def streams_to_refresh(
        self, expiring_before: float, accessed_since: float, limit: int
    ) -> list[CachedStream]:
        await asyncio.sleep(0)
        found = [
            e
            for e in self.streams.values()
            if e.expires_at < expiring_before and e.last_access >= accessed_since
        ]
        return sorted(found, key=lambda e: e.expires_at)[:limit]

    async def put_failure(self, failure: Failure) -> None:
        await asyncio.sleep(0)
        self.failures[failure.track_id] = failure

    async def get_failure(self, track_id: str, now: float) -> Failure | None:
        await asyncio.sleep(0)
        f = self.failures.get(track_id)
        return f if f is not None and f.retry_after > now else None

    async def delete_failure(self, track_id: str) -> None:
        await asyncio.sleep(0)
        self.failures.pop(track_id, None)

"""An in-memory CounterStore, for a SpotifyClient built without storage (one process, lost on
restart). The real ones live in the storage backends; this one follows the same contract."""

from __future__ import annotations

from collections import deque

from storage.records import CounterHit, Hold


class MemoryCounters:
    shared_across_processes = False

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._holds: dict[str, Hold] = {}

    async def hit_counter(
        self, name: str, now: float, window: float, limit: int | None = None
    ) -> CounterHit:
        return self._hit(name, now, window, record=True, limit=limit)

    async def count_counter(self, name: str, now: float, window: float) -> CounterHit:
        return self._hit(name, now, window, record=False, limit=None)

    def _hit(
        self, name: str, now: float, window: float, record: bool, limit: int | None
    ) -> CounterHit:
        hits = self._hits.setdefault(name, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        recorded = record and (limit is None or len(hits) < limit)
        if recorded:
            hits.append(now)
        return CounterHit(recorded, len(hits), hits[0] if hits else None)

    async def set_hold(self, name: str, until: float, reason: str) -> Hold:
        current = self._holds.get(name)
        if current is None or current.until < until:
            self._holds[name] = current = Hold(until, reason)
        return current

    async def get_hold(self, name: str, now: float) -> Hold | None:
        hold = self._holds.get(name)
        return hold if hold is not None and hold.until > now else None

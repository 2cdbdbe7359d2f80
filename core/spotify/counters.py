"""In-memory CounterStores: for a SpotifyClient built without storage (one process, lost on
restart), and as the stand-in while the real one fails. The real ones live in the storage
backends; these follow the same contract."""

from __future__ import annotations

import logging
from collections import deque

from storage.base import CounterStore
from storage.errors import StorageError
from storage.records import CounterHit, Hold

log = logging.getLogger(__name__)


class StoreEpisode:
    """A failing store, told once: a WARNING when it starts failing, an INFO when it answers
    again, nothing for every call in between."""

    def __init__(self, logger: logging.Logger, failing: str, answering: str) -> None:
        self._log = logger  # the caller's, so the lines say who stopped counting in storage
        self._failing_message = failing  # %s: the storage error
        self._answering_message = answering
        self.failing = False

    def failed(self, exc: StorageError) -> None:
        if not self.failing:
            self._log.warning(self._failing_message, exc)
        self.failing = True

    def answered(self) -> None:
        if self.failing:
            self._log.info(self._answering_message)
        self.failing = False


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


class FallbackCounters:
    """A CounterStore that counts in memory while the real one fails (a full disk, Redis
    gone), so the 30 s rate window never stops every Spotify call with the storage; it logs
    the episode once and goes back to the real store when it answers."""

    def __init__(self, store: CounterStore) -> None:
        self._store = store
        self._memory = MemoryCounters()
        self._episode = StoreEpisode(
            log,
            "Spotify call counters: storage failing (%s), counting in memory",
            "Spotify call counters: storage answers again",
        )
        self.shared_across_processes = store.shared_across_processes

    async def hit_counter(
        self, name: str, now: float, window: float, limit: int | None = None
    ) -> CounterHit:
        try:
            hit = await self._store.hit_counter(name, now, window, limit)
        except StorageError as exc:
            self._episode.failed(exc)
            return await self._memory.hit_counter(name, now, window, limit)
        self._episode.answered()
        return hit

    async def count_counter(self, name: str, now: float, window: float) -> CounterHit:
        try:
            return await self._store.count_counter(name, now, window)
        except StorageError as exc:
            self._episode.failed(exc)
            return await self._memory.count_counter(name, now, window)

    async def set_hold(self, name: str, until: float, reason: str) -> Hold:
        held = await self._memory.set_hold(name, until, reason)  # known here whatever happens
        try:
            return await self._store.set_hold(name, until, reason)
        except StorageError as exc:
            self._episode.failed(exc)
            return held

    async def get_hold(self, name: str, now: float) -> Hold | None:
        try:
            return await self._store.get_hold(name, now)
        except StorageError as exc:
            self._episode.failed(exc)
            return await self._memory.get_hold(name, now)

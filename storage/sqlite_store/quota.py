"""The Spotify call budget's counters and holds in SQLite (shared with the indexer process)."""

from __future__ import annotations

from storage.records import (
    CounterHit,
    Hold,
)
from storage.sqlite_store.core import SQLiteCore, _sqlite_errors


class SQLiteQuota(SQLiteCore):
    # --- counters and holds (the Spotify call budget) ------------------------------------

    async def _counter(self, name: str, now: float, window: float, limit: int | None) -> CounterHit:
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM counter_hits WHERE name=? AND at<=?", (name, now - window)
            )
            async with db.execute(
                "SELECT COUNT(*), MIN(at) FROM counter_hits WHERE name=?", (name,)
            ) as cur:
                row = await cur.fetchone()
            count, oldest = (int(row[0]), row[1]) if row else (0, None)
            recorded = limit is not None and (limit < 0 or count < limit)
            if recorded:
                await db.execute("INSERT INTO counter_hits VALUES (?,?)", (name, now))
                count += 1
                oldest = now if oldest is None else oldest
        return CounterHit(recorded, count, None if oldest is None else float(oldest))

    @_sqlite_errors
    async def hit_counter(
        self, name: str, now: float, window: float, limit: int | None = None
    ) -> CounterHit:
        return await self._counter(name, now, window, -1 if limit is None else limit)

    @_sqlite_errors
    async def count_counter(self, name: str, now: float, window: float) -> CounterHit:
        return await self._counter(name, now, window, None)

    @_sqlite_errors
    async def set_hold(self, name: str, until: float, reason: str) -> Hold:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO holds VALUES (?,?,?) ON CONFLICT(name) DO UPDATE SET "
                "until=excluded.until, reason=excluded.reason WHERE holds.until < excluded.until",
                (name, until, reason),
            )
            async with db.execute("SELECT until, reason FROM holds WHERE name=?", (name,)) as cur:
                row = await cur.fetchone()
        return Hold(float(row[0]), str(row[1])) if row else Hold(until, reason)

    @_sqlite_errors
    async def get_hold(self, name: str, now: float) -> Hold | None:
        row = await self._fetchone(
            "SELECT until, reason FROM holds WHERE name=? AND until>?", (name, now)
        )
        return Hold(float(row[0]), str(row[1])) if row else None

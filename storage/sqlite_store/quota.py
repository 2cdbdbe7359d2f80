"""The Spotify call budget's counters and holds in SQLite (shared with the indexer process).

Counter hits are group-committed. Every Spotify call is counted twice (the app rate limiter
and the daily budget), and on the one aiosqlite connection each hit in its own transaction
queued every call behind every other one (skip p95 in seconds at 200 guilds). So hits that
arrive while a batch is being written wait for the next batch, and each batch is one
BEGIN IMMEDIATE ... COMMIT in which the hits are evaluated one by one in arrival order: a
limit is honoured exactly as with one transaction per hit, only the commits are shared.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiosqlite

from storage.crypto import TokenCipher
from storage.records import (
    CounterHit,
    Hold,
)
from storage.sqlite_store.core import SQLiteCore, _sqlite_errors

# A batch holds the write lock: bounded so that other transactions (leases, links) queued on
# the lock in between are not kept waiting behind an arbitrarily long burst of hits.
_BATCH_MAX = 256


@dataclass
class _Hit:
    name: str
    now: float
    window: float
    limit: int | None  # None: only look; negative: no limit
    done: asyncio.Future[CounterHit] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SQLiteQuota(SQLiteCore):
    # --- counters and holds (the Spotify call budget) ------------------------------------

    def __init__(self, db: aiosqlite.Connection, path: str, cipher: TokenCipher, max_streams: int):
        super().__init__(db, path, cipher, max_streams)
        self._pending_hits: list[_Hit] = []  # in arrival order
        self._hit_writer: asyncio.Task[None] | None = None

    async def _counter(self, name: str, now: float, window: float, limit: int | None) -> CounterHit:
        hit = _Hit(name, now, window, limit)
        self._pending_hits.append(hit)
        if self._hit_writer is None or self._hit_writer.done():
            # A task of its own, not the first caller: a caller cancelled mid-batch must not
            # roll back the other callers' hits (a cancelled caller's hit may still count, as
            # a statement already queued on aiosqlite always did).
            self._hit_writer = asyncio.create_task(self._write_hits())
        return await hit.done

    async def _write_hits(self) -> None:
        """Write the queued hits, one transaction per batch, until none are left."""
        while self._pending_hits:
            batch = self._pending_hits[:_BATCH_MAX]
            del self._pending_hits[:_BATCH_MAX]
            try:
                async with self._transaction() as db:
                    results = [await _count(db, hit) for hit in batch]
            except Exception as exc:
                # Nothing of the batch was committed: every caller gets the failure (turned
                # into StorageError / StorageUnavailable by its own _sqlite_errors).
                for hit in batch:
                    if not hit.done.done():
                        hit.done.set_exception(exc)
                continue
            except BaseException:
                for hit in batch + self._pending_hits:
                    hit.done.cancel()
                self._pending_hits.clear()
                raise
            for hit, result in zip(batch, results, strict=True):
                if not hit.done.done():  # its caller was cancelled meanwhile
                    hit.done.set_result(result)

    async def _hits_written(self) -> None:
        """Wait for queued hits to be committed (a clean stop loses none)."""
        if self._hit_writer is not None:
            await asyncio.wait({self._hit_writer})

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


async def _count(db: aiosqlite.Connection, hit: _Hit) -> CounterHit:
    """One hit (or look) inside the batch's transaction: drop expired hits, count, record."""
    await db.execute(
        "DELETE FROM counter_hits WHERE name=? AND at<=?", (hit.name, hit.now - hit.window)
    )
    async with db.execute(
        "SELECT COUNT(*), MIN(at) FROM counter_hits WHERE name=?", (hit.name,)
    ) as cur:
        row = await cur.fetchone()
    count, oldest = (int(row[0]), row[1]) if row else (0, None)
    recorded = hit.limit is not None and (hit.limit < 0 or count < hit.limit)
    if recorded:
        await db.execute("INSERT INTO counter_hits VALUES (?,?)", (hit.name, hit.now))
        count += 1
        oldest = hit.now if oldest is None else oldest
    return CounterHit(recorded, count, None if oldest is None else float(oldest))

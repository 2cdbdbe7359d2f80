"""The Spotify call budget's counters and holds in SQLite (shared with the indexer process).

Counter hits are group-committed. Every Spotify call is counted twice (the app rate limiter
and the daily budget), and on the one aiosqlite connection each hit in its own transaction
queued every call behind every other one (skip p95 in seconds at 200 guilds). So hits that
arrive while a batch is being written wait for the next batch, and each batch is one
BEGIN IMMEDIATE ... COMMIT in which the hits are evaluated one by one in arrival order: a
limit is honoured exactly as with one transaction per hit, only the commits are shared.
Each aiosqlite statement is a hop to its thread and back, so the batch is replayed in memory
from a few reads per counter name rather than run as three statements per hit.
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
                    results = await _count_batch(db, batch)
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


async def _count_batch(db: aiosqlite.Connection, batch: list[_Hit]) -> list[CounterHit]:
    """The batch's hits in arrival order, as if each ran alone: a few statements per name.

    Each hit deletes its expired rows, counts, and maybe inserts. Rows newer than the batch's
    latest cutoff are never deleted by it, so only their count and oldest are read; the older
    ones and the batch's own new rows are replayed here, then written back in one go.
    """
    results: dict[int, CounterHit] = {}
    for name in dict.fromkeys(hit.name for hit in batch):
        hits = [(i, hit) for i, hit in enumerate(batch) if hit.name == name]
        last_cutoff = max(hit.now - hit.window for _, hit in hits)
        rows = await db.execute_fetchall(
            "SELECT COUNT(*), MIN(at) FROM counter_hits WHERE name=? AND at>?", (name, last_cutoff)
        )
        kept, kept_oldest = next((int(r[0]), r[1]) for r in rows)
        expiring = await db.execute_fetchall(
            "SELECT at FROM counter_hits WHERE name=? AND at<=?", (name, last_cutoff)
        )
        changing = [float(r[0]) for r in expiring]  # the expiring rows, then this batch's
        for i, hit in hits:
            changing = [at for at in changing if at > hit.now - hit.window]
            count = kept + len(changing)
            oldest = min([at for at in (kept_oldest, *changing) if at is not None], default=None)
            recorded = hit.limit is not None and (hit.limit < 0 or count < hit.limit)
            if recorded:
                changing.append(hit.now)
                count += 1
                oldest = hit.now if oldest is None else oldest
            results[i] = CounterHit(recorded, count, None if oldest is None else float(oldest))
        # Every expiring row is gone by the latest cutoff; what is left is new rows to keep.
        await db.execute("DELETE FROM counter_hits WHERE name=? AND at<=?", (name, last_cutoff))
        await db.executemany(
            "INSERT INTO counter_hits VALUES (?,?)", [(name, at) for at in changing]
        )
    return [results[i] for i in range(len(batch))]

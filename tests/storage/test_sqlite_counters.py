"""SQLite group-commits concurrent counter hits: one transaction per batch, hits evaluated in
arrival order inside it, and a failure fails the whole batch (nothing of it committed)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

import pytest

from storage import StorageError, StorageUnavailable, TokenCipher
from storage.records import CounterHit
from storage.sqlite import SQLiteStorage


async def _open(tmp_path: Path) -> SQLiteStorage:
    return await SQLiteStorage.open(str(tmp_path / "g.db"), TokenCipher.generate(), 10)


async def test_concurrent_hits_share_a_commit_and_count_in_arrival_order(tmp_path: Path) -> None:
    store = await _open(tmp_path)
    statements: list[str] = []
    await store._db.set_trace_callback(statements.append)
    try:
        now = time.time()
        hits = await asyncio.gather(
            *(store.hit_counter("budget", now + n / 1000, 60, limit=30) for n in range(100))
        )
        assert [h.recorded for h in hits] == [n < 30 for n in range(100)]
        assert [h.count for h in hits] == [min(n + 1, 30) for n in range(100)]
        assert all(h.oldest == now for h in hits)
        assert statements.count("COMMIT") <= 2  # one per batch, not one per hit
    finally:
        await store.aclose()
    reopened = await _open(tmp_path)
    try:
        assert (await reopened.count_counter("budget", now + 1, 60)).count == 30
    finally:
        await reopened.aclose()


async def test_a_failure_fails_every_hit_of_its_batch_and_the_next_batch_works(
    tmp_path: Path,
) -> None:
    store = await _open(tmp_path)
    try:
        with sqlite3.connect(tmp_path / "g.db") as db:
            # A real SQLite failure in the middle of a batch (a constraint, not an outage).
            db.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON counter_hits WHEN NEW.name='poison' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
        now = time.time()
        names = ["ok"] * 5 + ["poison"] + ["ok"] * 5
        results = await asyncio.gather(
            *(store.hit_counter(name, now, 60, limit=100) for name in names),
            return_exceptions=True,
        )
        assert all(isinstance(r, StorageError) for r in results), results
        assert not any(isinstance(r, StorageUnavailable) for r in results)
        assert not store.outage.ongoing
        # Rolled back as a whole: the hits before the poisoned one were not kept either.
        assert (await store.count_counter("ok", now, 60)).count == 0
        again = await asyncio.gather(*(store.hit_counter("ok", now, 60, limit=3) for _ in range(5)))
        assert [h.recorded for h in again] == [True, True, True, False, False]
    finally:
        await store.aclose()


async def test_a_cancelled_caller_does_not_undo_the_others(tmp_path: Path) -> None:
    store = await _open(tmp_path)
    try:
        now = time.time()
        calls = [asyncio.create_task(store.hit_counter("c", now, 60, limit=10)) for _ in range(6)]
        await asyncio.sleep(0)  # all queued
        calls[2].cancel()
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(done[2], asyncio.CancelledError)
        assert all(h.recorded for i, h in enumerate(done) if i != 2)  # type: ignore[union-attr]
        # The cancelled caller's hit may or may not count (as before); the others all did.
        assert (await store.count_counter("c", now, 60)).count in (5, 6)
    finally:
        await store.aclose()


async def test_a_closed_store_still_refuses_hits(tmp_path: Path) -> None:
    store = await _open(tmp_path)
    await store.aclose()
    with pytest.raises(StorageUnavailable):
        await store.hit_counter("x", time.time(), 60, limit=1)


def _one_by_one(
    db: sqlite3.Connection, name: str, now: float, window: float, limit: int | None
) -> CounterHit:
    """The counter as it was, one transaction per hit: the oracle for the batched replay."""
    with db:
        db.execute("DELETE FROM counter_hits WHERE name=? AND at<=?", (name, now - window))
        count, oldest = db.execute(
            "SELECT COUNT(*), MIN(at) FROM counter_hits WHERE name=?", (name,)
        ).fetchone()
        recorded = limit is not None and (limit < 0 or count < limit)
        if recorded:
            db.execute("INSERT INTO counter_hits VALUES (?,?)", (name, now))
            count += 1
            oldest = now if oldest is None else oldest
    return CounterHit(recorded, count, None if oldest is None else float(oldest))


async def test_a_batch_answers_and_stores_what_hits_one_by_one_would(tmp_path: Path) -> None:
    # Out-of-order times, mixed windows, looks, unlimited and limited hits, old rows expiring
    # mid-batch: the batch is replayed in memory, so compare it with the plain SQL per hit.
    rng = random.Random(7)
    store = await _open(tmp_path)
    oracle = sqlite3.connect(tmp_path / "oracle.db", isolation_level=None)
    try:
        oracle.execute("CREATE TABLE counter_hits (name TEXT NOT NULL, at REAL NOT NULL)")
        old = [(rng.choice("ab"), 1000.0 + rng.randrange(60)) for _ in range(40)]
        oracle.executemany("INSERT INTO counter_hits VALUES (?,?)", old)
        with sqlite3.connect(tmp_path / "g.db") as db:
            db.executemany("INSERT INTO counter_hits VALUES (?,?)", old)
        calls = [
            (
                rng.choice("ab"),
                1060.0 + rng.randrange(40),
                float(rng.choice((10, 30, 60))),
                rng.choice((None, -1, 5, 12, 30)),
            )
            for _ in range(200)
        ]
        want = [_one_by_one(oracle, *call) for call in calls]
        got = await asyncio.gather(
            *(
                store.count_counter(name, now, window)
                if limit is None
                else store.hit_counter(name, now, window, limit=None if limit < 0 else limit)
                for name, now, window, limit in calls
            )
        )
        assert got == want
        rows = "SELECT name, at FROM counter_hits ORDER BY name, at"
        assert (await store._db.execute_fetchall(rows)) == oracle.execute(rows).fetchall()
    finally:
        oracle.close()
        await store.aclose()

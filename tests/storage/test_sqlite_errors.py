"""Which SQLite failures are outages (StorageUnavailable: "try again in a minute") and which
are faults (StorageError, or our own ValueError): only the first start an outage episode."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import StorageError, StorageUnavailable, TokenCipher
from storage.sqlite import SQLiteStorage


async def _open(tmp_path: Path) -> SQLiteStorage:
    return await SQLiteStorage.open(str(tmp_path / "g.db"), TokenCipher.generate(), 10)


async def test_a_broken_schema_is_a_fault_not_an_outage(tmp_path: Path) -> None:
    store = await _open(tmp_path)
    try:
        with sqlite3.connect(tmp_path / "g.db") as db:
            db.execute("DROP TABLE holds")  # "no such table": a bug or a bad restore
        with pytest.raises(StorageError) as caught:
            await store.get_hold("spotify", 0.0)
        assert not isinstance(caught.value, StorageUnavailable)
        assert not store.outage.ongoing
    finally:
        await store.aclose()


async def test_a_bad_value_of_ours_is_not_an_outage(tmp_path: Path) -> None:
    store = await _open(tmp_path)
    try:
        with sqlite3.connect(tmp_path / "g.db") as db:
            db.execute("INSERT INTO holds VALUES ('spotify', 9e99, 'x')")
            db.execute("UPDATE holds SET until='not a number'")
        # float('not a number'): not the database's failure
        with pytest.raises(ValueError, match="could not convert"):
            await store.get_hold("spotify", 0.0)
        assert not store.outage.ongoing
    finally:
        await store.aclose()


async def test_a_busy_or_closed_database_is_an_outage(tmp_path: Path) -> None:
    store = await _open(tmp_path)
    await store._db.execute("PRAGMA busy_timeout=50")  # keep the test short
    with sqlite3.connect(tmp_path / "g.db", isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(StorageUnavailable):
                await store.set_hold("spotify", 9e9, "x")
            assert store.outage.ongoing
        finally:
            other.execute("ROLLBACK")
    await store.aclose()
    with pytest.raises(StorageUnavailable):
        await store.get_hold("spotify", 0.0)

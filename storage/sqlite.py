"""SQLite backend (aiosqlite): the embedded default.

One connection in autocommit mode; statements that must be atomic together run inside
`_transaction()`, which serialises them with an asyncio lock (they share the one connection)
and `BEGIN IMMEDIATE` (other processes on the same file wait on busy_timeout instead of failing).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from storage.crypto import TokenCipher
from storage.errors import StorageUnavailable
from storage.migrations import MIGRATIONS
from storage.sqlite_store.audience import SQLiteAudience
from storage.sqlite_store.core import SQLiteCore, _sqlite_errors
from storage.sqlite_store.leases import SQLiteLeases
from storage.sqlite_store.links import SQLiteLinks
from storage.sqlite_store.quota import SQLiteQuota
from storage.sqlite_store.sessions import SQLiteSessions
from storage.sqlite_store.streams import SQLiteStreams


class SQLiteStorage(
    SQLiteLinks,
    SQLiteSessions,
    SQLiteStreams,
    SQLiteLeases,
    SQLiteQuota,
    SQLiteAudience,
    SQLiteCore,
):
    """The SQLite backend: one class per store (storage/sqlite_store/), one `Storage` here."""

    @classmethod
    async def open(cls, path: str, cipher: TokenCipher, max_streams: int) -> SQLiteStorage:
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageUnavailable(f"cannot create the folder for {path}: {exc}") from exc
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"cannot open SQLite database {path}: {exc}") from exc
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL mode
            await _migrate(db)
        except BaseException as exc:
            await db.close()
            if isinstance(exc, sqlite3.Error):
                raise StorageUnavailable(f"cannot prepare SQLite database {path}: {exc}") from exc
            raise
        return cls(db, path, cipher, max_streams)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._hits_written()
            await self._db.close()

    @_sqlite_errors
    async def ping(self) -> None:
        await self._fetchone("SELECT 1")


async def _migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise StorageUnavailable(
            f"the database is at schema version {version}, newer than this code "
            f"({len(MIGRATIONS)}): upgrade Game Night"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await db.execute("BEGIN IMMEDIATE")
        try:
            for statement in script:
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version={number}")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        await db.execute("COMMIT")

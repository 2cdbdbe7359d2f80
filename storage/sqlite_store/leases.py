"""Sync leases (one process per file: releases are told in memory) and named locks in SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import (
    AsyncIterator,
)
from contextlib import asynccontextmanager

from storage.errors import StorageError, StorageUnavailable
from storage.sqlite_store.core import SQLiteCore, _sqlite_errors

LOCK_POLL_S = 0.05  # how often a waiter on a named lock looks again


class SQLiteLeases(SQLiteCore):
    # --- leases ----------------------------------------------------------------------------

    leases_shared = False  # one process per database file

    @_sqlite_errors
    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        now = time.time()
        # Take the lease when free, expired, or already ours (re-acquire after a restart).
        changed = await self._write(
            "INSERT INTO leases VALUES (?,?,?) ON CONFLICT(name) DO UPDATE SET "
            "holder=excluded.holder, expires_at=excluded.expires_at "
            "WHERE leases.expires_at <= ? OR leases.holder = excluded.holder",
            (name, holder, now + ttl, now),
        )
        return changed == 1

    @_sqlite_errors
    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        now = time.time()
        sql = "UPDATE leases SET expires_at=? WHERE name=? AND holder=? AND expires_at>?"
        return await self._write(sql, (now + ttl, name, holder, now)) == 1

    @_sqlite_errors
    async def lease_holder(self, name: str) -> str | None:
        sql = "SELECT holder FROM leases WHERE name=? AND expires_at>?"
        row = await self._fetchone(sql, (name, time.time()))
        return None if row is None else str(row[0])

    @_sqlite_errors
    async def release_lease(self, name: str, holder: str) -> bool:
        sql = "DELETE FROM leases WHERE name=? AND holder=?"
        released = await self._write(sql, (name, holder)) == 1
        if released:
            for queue in self._released:
                queue.put_nowait(name)
        return released

    async def lease_releases(self) -> AsyncIterator[str]:
        """Names of leases released from now on (in this process: SQLite serves one)."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._released.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._released.discard(queue)

    # --- named locks: a row with an expiry, taken under BEGIN IMMEDIATE, polled -----------
    # Other processes on the file (the indexer beside the bot) see the row; one that died
    # holding it frees it when `expires_at` passes. Waiters in this process poll too: callers
    # that want a queue in memory put a local lock in front (core.spotify.tokens.StoreLocks).

    @_sqlite_errors
    async def _take_lock(self, name: str, holder: str, ttl: float) -> bool:
        now = time.time()
        async with (
            self._transaction() as db,
            db.execute(
                "INSERT INTO named_locks VALUES (?,?,?) ON CONFLICT(name) DO UPDATE SET "
                "holder=excluded.holder, expires_at=excluded.expires_at "
                "WHERE named_locks.expires_at <= ?",
                (name, holder, now + ttl, now),
            ) as cur,
        ):
            return cur.rowcount == 1

    @_sqlite_errors
    async def _drop_lock(self, name: str, holder: str) -> None:
        await self._write("DELETE FROM named_locks WHERE name=? AND holder=?", (name, holder))

    @asynccontextmanager
    async def named_lock(self, name: str, ttl: float, wait: float) -> AsyncIterator[None]:
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        while not await self._take_lock(name, holder, ttl):
            if time.monotonic() >= deadline:
                raise StorageUnavailable(f"lock {name} stayed busy for {wait:.0f} s")
            await asyncio.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            # Only our own row: past its ttl another holder may have taken it.
            with contextlib.suppress(StorageError):
                await asyncio.shield(self._drop_lock(name, holder))

"""What every SQLite store shares: the one connection, its transactions, and error handling."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
)
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

from storage.crypto import TokenCipher
from storage.errors import StorageError, StorageUnavailable
from storage.outage import Outage

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
S = TypeVar("S", bound="SQLiteCore")


def _sqlite_errors(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Turn driver errors into StorageError / StorageUnavailable with the database named."""

    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = await method(self, *args, **kwargs)
        except (sqlite3.Error, ValueError) as exc:
            if not _unavailable(exc, self._db):
                if isinstance(exc, ValueError):
                    raise  # our own bug (a bad value), not the database's
                raise StorageError(f"SQLite database {self.path} failed: {exc}") from exc
            self.outage.failed(exc)
            raise StorageUnavailable(f"SQLite database {self.path} is unavailable: {exc}") from exc
        self.outage.answered()
        return result

    return wrapper


# SQLite result codes that mean "the database cannot answer now" (it is busy past
# busy_timeout, the disk failed or is full, the file cannot be opened or written) rather than
# a broken query or a corrupt file. https://www.sqlite.org/rescode.html
_OUTAGE_CODES = frozenset(
    {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN"}
    | {"SQLITE_READONLY", "SQLITE_NOMEM", "SQLITE_PROTOCOL"}
)


def _unavailable(exc: Exception, db: aiosqlite.Connection) -> bool:
    """Whether `exc` is an outage (StorageUnavailable) rather than a bug or corruption."""
    if isinstance(exc, ValueError):
        # aiosqlite's "no active connection": the connection is closed or its thread died.
        return db._connection is None  # aiosqlite has no public "closed"
    name = getattr(exc, "sqlite_errorname", "") or ""
    base = name.split("_", 2)
    return "_".join(base[:2]) in _OUTAGE_CODES


class SQLiteCore:
    """The connection and the state every store below builds on."""

    def __init__(self, db: aiosqlite.Connection, path: str, cipher: TokenCipher, max_streams: int):
        self._db = db
        self._cipher = cipher
        self._max_streams = max_streams
        self._closed = False
        # aiosqlite has no transaction object: this lock keeps transactions from interleaving
        # on the shared connection.
        self._tx_lock = asyncio.Lock()
        # Lease releases for this process's waiters (SQLite leases serve one process).
        self._released: set[asyncio.Queue[str]] = set()
        # Listen-page audience by guild and process: one bot process owns a SQLite file, so the
        # count lives in its memory (guild -> process -> (count, expires on the monotonic clock)).
        self._audience: dict[int, dict[str, tuple[int, float]]] = {}
        self.path = path
        self.url = f"sqlite:///{path}"
        # The indexer (`python -m bot index`) runs beside the bot on the same file: the
        # Spotify window, holds and the refresh lock must span processes here too.
        self.shared_across_processes = True
        self.outage = Outage(self.url)

    # --- helpers ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, correct when cancelled at any await.

        aiosqlite runs every statement on its own thread in submission order, and a cancelled
        await does not take back a statement already queued: a BEGIN whose caller was cancelled
        still runs. So whatever happens, a ROLLBACK is queued behind it before the lock is
        released (sqlite3's rollback() is a no-op outside a transaction), and COMMIT and
        ROLLBACK are waited for to the end even through a cancel, which is re-raised after.
        """
        async with self._tx_lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                await _to_the_end(self._db.commit())
            except BaseException:
                # A failed rollback means the connection is gone; the first error says why.
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await _to_the_end(self._db.rollback())
                raise

    # Single statements take the transaction lock too: on the one shared connection a
    # statement issued while another coroutine's transaction is open would join it, and be
    # undone by its ROLLBACK after its caller was told it succeeded.

    async def _fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self._tx_lock, self._db.execute(sql, tuple(params)) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self._tx_lock, self._db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        async with self._tx_lock, self._db.execute(sql, tuple(params)) as cur:
            return int(cur.rowcount)


async def _to_the_end(step: Awaitable[T]) -> T:
    """Await `step` to completion even if cancelled meanwhile; then re-raise the cancel."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()

"""SQLite backend (aiosqlite): the embedded default.

One connection in autocommit mode; statements that must be atomic together run inside
`_transaction()`, which serialises them with an asyncio lock (they share the one connection)
and `BEGIN IMMEDIATE` (other processes on the same file wait on busy_timeout instead of failing).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

from storage.base import SessionFields
from storage.codec import (
    STATE_RETENTION_S,
    check_session_fields,
    decode_headers,
    dump_listener,
    dump_pending,
    dump_snapshot,
    encode_headers,
    load_listener,
    load_pending,
    load_snapshot,
    state_key,
)
from storage.crypto import TokenCipher
from storage.errors import StorageError, StorageUnavailable
from storage.migrations import MIGRATIONS
from storage.outage import Outage
from storage.records import (
    CachedStream,
    CounterHit,
    Failure,
    Hold,
    LinkStatus,
    ListenerState,
    OAuthState,
    PendingLink,
    PendingTake,
    PendingTaker,
    Session,
    SpotifyLink,
    StateCheck,
    StateConsumption,
)

P = ParamSpec("P")

LOCK_POLL_S = 0.05  # how often a waiter on a named lock looks again
R = TypeVar("R")
T = TypeVar("T")

_STREAM_COLUMNS = ", ".join(
    [
        "track_id",
        "video_url",
        "stream_url",
        "expires_at",
        "resolved_at",
        "last_access",
        "title",
        "duration_s",
        "score",
        "http_headers",
    ]
)


def _stream_of(row: Sequence[Any]) -> CachedStream:
    *fields, headers = row
    return replace(CachedStream(*fields), http_headers=decode_headers(headers))


def _sqlite_errors(
    method: Callable[Concatenate[SQLiteStorage, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[SQLiteStorage, P], Coroutine[Any, Any, R]]:
    """Turn driver errors into StorageError / StorageUnavailable with the database named."""

    async def wrapper(self: SQLiteStorage, /, *args: P.args, **kwargs: P.kwargs) -> R:
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


class SQLiteStorage:
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
            await self._db.close()

    @_sqlite_errors
    async def ping(self) -> None:
        await self._fetchone("SELECT 1")

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

    # --- links -----------------------------------------------------------------------------

    @_sqlite_errors
    async def put_link(self, link: SpotifyLink) -> None:
        await self._write(
            "INSERT OR REPLACE INTO links VALUES (?,?,?,?,?,?,?,?,?)",
            (
                link.discord_user_id,
                link.spotify_user_id,
                link.display_name,
                self._cipher.encrypt(link.access_token),
                self._cipher.encrypt(link.refresh_token),
                link.expires_at,
                " ".join(link.scopes),
                link.linked_at,
                link.status.value,
            ),
        )

    @_sqlite_errors
    async def get_link(self, discord_user_id: int) -> SpotifyLink | None:
        row = await self._fetchone(
            "SELECT * FROM links WHERE discord_user_id=?", (discord_user_id,)
        )
        if row is None:
            return None
        return SpotifyLink(
            discord_user_id=row[0],
            spotify_user_id=row[1],
            display_name=row[2],
            access_token=self._cipher.decrypt(row[3]),
            refresh_token=self._cipher.decrypt(row[4]),
            expires_at=row[5],
            scopes=tuple(row[6].split()),
            linked_at=row[7],
            status=LinkStatus(row[8]),
        )

    @_sqlite_errors
    async def set_link_status(
        self, discord_user_id: int, status: LinkStatus, linked_at: float | None = None
    ) -> bool:
        sql = "UPDATE links SET status=? WHERE discord_user_id=? AND (? IS NULL OR linked_at=?)"
        return await self._write(sql, (status.value, discord_user_id, linked_at, linked_at)) == 1

    @_sqlite_errors
    async def update_link_tokens(self, link: SpotifyLink) -> bool:
        changed = await self._write(
            "UPDATE links SET access_token_enc=?, refresh_token_enc=?, expires_at=?, scopes=? "
            "WHERE discord_user_id=? AND linked_at=?",
            (
                self._cipher.encrypt(link.access_token),
                self._cipher.encrypt(link.refresh_token),
                link.expires_at,
                " ".join(link.scopes),
                link.discord_user_id,
                link.linked_at,
            ),
        )
        return changed == 1

    @_sqlite_errors
    async def delete_link(self, discord_user_id: int) -> bool:
        return (
            await self._write("DELETE FROM links WHERE discord_user_id=?", (discord_user_id,)) == 1
        )

    # --- OAuth states ----------------------------------------------------------------------

    @_sqlite_errors
    async def put_oauth_state(self, state: OAuthState) -> None:
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM oauth_states WHERE expires_at < ?", (time.time() - STATE_RETENTION_S,)
            )
            await db.execute(
                "INSERT INTO oauth_states VALUES (?,?,?,?,?,NULL)",
                (
                    state_key(state.state),
                    state.discord_user_id,
                    state.guild_id,
                    state.created_at,
                    state.expires_at,
                ),
            )

    @_sqlite_errors
    async def consume_oauth_state(self, state: str, now: float) -> StateConsumption:
        key = state_key(state)
        # One statement decides the winner: concurrent consumers cannot both see used_at NULL.
        row = await self._fetchone(
            "UPDATE oauth_states SET used_at=? WHERE state_hash=? AND used_at IS NULL "
            "RETURNING discord_user_id, guild_id, created_at, expires_at",
            (now, key),
        )
        if row is None:
            used = await self._fetchone("SELECT 1 FROM oauth_states WHERE state_hash=?", (key,))
            return StateConsumption(StateCheck.USED if used else StateCheck.UNKNOWN)
        record = OAuthState(state, row[0], row[1], row[2], row[3])
        return StateConsumption(StateCheck.OK if now <= row[3] else StateCheck.EXPIRED, record)

    # --- pending links ---------------------------------------------------------------------

    @_sqlite_errors
    async def put_pending_link(self, pending: PendingLink, now: float, max_pending: int) -> None:
        blob = dump_pending(pending, self._cipher)
        async with self._transaction() as db:
            await db.execute("DELETE FROM pending_links WHERE expires_at < ?", (now,))
            await db.execute(
                "INSERT OR REPLACE INTO pending_links VALUES (?,?,?,NULL)",
                (state_key(pending.state), pending.expires_at, blob),
            )
            await db.execute(
                "DELETE FROM pending_links WHERE state_hash NOT IN "
                "(SELECT state_hash FROM pending_links ORDER BY expires_at DESC LIMIT ?)",
                (max_pending,),
            )

    @_sqlite_errors
    async def get_pending_link(self, state: str, now: float) -> PendingTake:
        row = await self._fetchone(
            "SELECT blob, taken_by FROM pending_links WHERE state_hash=? AND expires_at >= ?",
            (state_key(state), now),
        )
        if row is None:
            return PendingTake(None)
        if row[1] is not None:
            return PendingTake(None, PendingTaker(row[1]))
        return PendingTake(load_pending(state, row[0], self._cipher))

    @_sqlite_errors
    async def update_pending_link(self, pending: PendingLink, now: float) -> bool:
        return (
            await self._write(
                "UPDATE pending_links SET blob=? WHERE state_hash=? AND expires_at >= ? "
                "AND taken_by IS NULL",
                (dump_pending(pending, self._cipher), state_key(pending.state), now),
            )
            == 1
        )

    @_sqlite_errors
    async def take_pending_link(self, state: str, now: float, by: PendingTaker) -> PendingTake:
        key = state_key(state)
        async with self._transaction() as db:
            async with db.execute(
                "SELECT blob, taken_by, expires_at FROM pending_links WHERE state_hash=?", (key,)
            ) as cur:
                row = await cur.fetchone()
            if row is None or row[2] < now:
                return PendingTake(None)
            if row[1] is not None:
                return PendingTake(None, PendingTaker(row[1]))
            await db.execute(
                "UPDATE pending_links SET taken_by=?, blob=NULL WHERE state_hash=?", (by, key)
            )
        return PendingTake(load_pending(state, row[0], self._cipher))

    # --- sessions --------------------------------------------------------------------------

    @_sqlite_errors
    async def create_session(self, session: Session) -> bool:
        async with self._transaction() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO sessions VALUES (?,?,?,?,?,?,?,?)",
                (
                    session.guild_id,
                    session.host_user_id,
                    session.created_at,
                    session.channel_id,
                    session.status_message_id,
                    dump_snapshot(session.snapshot),
                    session.listen_token,
                    session.host_active_at,
                ),
            )
            if cur.rowcount != 1:
                return False
            await db.executemany(
                "INSERT INTO session_listeners VALUES (?,?,?)",
                [
                    (session.guild_id, uid, dump_listener(ls))
                    for uid, ls in session.listeners.items()
                ],
            )
            return True

    @_sqlite_errors
    async def get_session(self, guild_id: int) -> Session | None:
        sessions = await self._load_sessions("WHERE guild_id=?", (guild_id,))
        return sessions[0] if sessions else None

    @_sqlite_errors
    async def get_session_by_listen_token(self, token: str) -> Session | None:
        # sessions_by_listen_token (a unique index) answers this without a scan.
        row = await self._fetchone("SELECT guild_id FROM sessions WHERE listen_token=?", (token,))
        if row is None:
            return None
        sessions = await self._load_sessions("WHERE guild_id=?", (row[0],))
        return sessions[0] if sessions and sessions[0].listen_token == token else None

    @_sqlite_errors
    async def list_sessions(self) -> list[Session]:
        return await self._load_sessions("", ())

    async def _load_sessions(self, where: str, params: tuple[Any, ...]) -> list[Session]:
        rows = await self._fetchall(f"SELECT * FROM sessions {where} ORDER BY guild_id", params)
        listeners: dict[int, dict[int, ListenerState]] = {row[0]: {} for row in rows}
        for guild_id, user_id, data in await self._fetchall(
            f"SELECT guild_id, user_id, data FROM session_listeners {where}", params
        ):
            if guild_id in listeners:
                listeners[guild_id][user_id] = load_listener(data)
        return [
            Session(
                guild_id=row[0],
                host_user_id=row[1],
                created_at=row[2],
                channel_id=row[3],
                status_message_id=row[4],
                snapshot=load_snapshot(row[5]),
                listen_token=row[6],
                host_active_at=row[7],
                listeners=listeners[row[0]],
            )
            for row in rows
        ]

    @_sqlite_errors
    async def update_session(self, guild_id: int, fields: SessionFields) -> bool:
        check_session_fields(fields)
        values: dict[str, Any] = dict(fields)
        if "snapshot" in values:
            values["snapshot"] = dump_snapshot(fields["snapshot"])
        if not values:
            return await self.get_session(guild_id) is not None
        assignments = ", ".join(f"{column}=?" for column in values)  # names checked above
        sql = f"UPDATE sessions SET {assignments} WHERE guild_id=?"
        return await self._write(sql, (*values.values(), guild_id)) == 1

    @_sqlite_errors
    async def delete_session(self, guild_id: int) -> bool:
        # Listeners go with it (ON DELETE CASCADE).
        return await self._write("DELETE FROM sessions WHERE guild_id=?", (guild_id,)) == 1

    @_sqlite_errors
    async def put_listener(self, guild_id: int, listener: ListenerState) -> bool:
        try:
            await self._write(
                "INSERT OR REPLACE INTO session_listeners VALUES (?,?,?)",
                (guild_id, listener.user_id, dump_listener(listener)),
            )
        except sqlite3.IntegrityError:  # no such session (foreign key)
            return False
        return True

    @_sqlite_errors
    async def update_listener(self, guild_id: int, listener: ListenerState) -> bool:
        sql = "UPDATE session_listeners SET data=? WHERE guild_id=? AND user_id=?"
        params = (dump_listener(listener), guild_id, listener.user_id)
        return await self._write(sql, params) == 1

    @_sqlite_errors
    async def remove_listener(self, guild_id: int, user_id: int) -> bool:
        sql = "DELETE FROM session_listeners WHERE guild_id=? AND user_id=?"
        return await self._write(sql, (guild_id, user_id)) == 1

    # --- stream cache ----------------------------------------------------------------------

    @_sqlite_errors
    async def get_stream(self, track_id: str) -> CachedStream | None:
        row = await self._fetchone(
            f"SELECT {_STREAM_COLUMNS} FROM streams WHERE track_id=?",
            (track_id,),
        )
        return None if row is None else _stream_of(row)

    @_sqlite_errors
    async def put_stream(self, entry: CachedStream) -> None:
        async with self._transaction() as db:
            await db.execute(
                f"INSERT OR REPLACE INTO streams ({_STREAM_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    entry.track_id,
                    entry.video_url,
                    entry.stream_url,
                    entry.expires_at,
                    entry.resolved_at,
                    entry.last_access,
                    entry.title,
                    entry.duration_s,
                    entry.score,
                    encode_headers(entry.http_headers),
                ),
            )
            await db.execute(
                "DELETE FROM streams WHERE track_id IN (SELECT track_id FROM streams "
                "ORDER BY last_access ASC LIMIT max(0, (SELECT count(*) FROM streams) - ?))",
                (self._max_streams,),
            )

    @_sqlite_errors
    async def touch_streams(self, accessed: Mapping[str, float]) -> None:
        if not accessed:
            return
        async with self._transaction() as db:
            await db.executemany(
                "UPDATE streams SET last_access=max(last_access, ?) WHERE track_id=?",
                [(at, track_id) for track_id, at in accessed.items()],
            )

    @_sqlite_errors
    async def delete_stream(self, track_id: str) -> bool:
        return await self._write("DELETE FROM streams WHERE track_id=?", (track_id,)) == 1

    @_sqlite_errors
    async def count_streams(self) -> int:
        row = await self._fetchone("SELECT count(*) FROM streams")
        return int(row[0]) if row else 0

    @_sqlite_errors
    async def streams_to_refresh(
        self, expiring_before: float, accessed_since: float, limit: int
    ) -> list[CachedStream]:
        rows = await self._fetchall(
            f"SELECT {_STREAM_COLUMNS} FROM streams "
            "WHERE expires_at < ? AND last_access >= ? ORDER BY expires_at LIMIT ?",
            (expiring_before, accessed_since, limit),
        )
        return [_stream_of(row) for row in rows]

    @_sqlite_errors
    async def put_failure(self, failure: Failure) -> None:
        await self._write(
            "INSERT OR REPLACE INTO failures VALUES (?,?,?)",
            (failure.track_id, failure.reason, failure.retry_after),
        )

    @_sqlite_errors
    async def get_failure(self, track_id: str, now: float) -> Failure | None:
        row = await self._fetchone(
            "SELECT track_id, reason, retry_after FROM failures WHERE track_id=? AND retry_after>?",
            (track_id, now),
        )
        return None if row is None else Failure(*row)

    @_sqlite_errors
    async def delete_failure(self, track_id: str) -> None:
        await self._write("DELETE FROM failures WHERE track_id=?", (track_id,))

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

    # --- listen-page audience (in memory: one process owns a SQLite file) -----------------

    async def set_audience(self, guild_id: int, process: str, count: int, ttl: float) -> None:
        counts = self._audience.setdefault(guild_id, {})
        if count > 0:
            counts[process] = (count, time.monotonic() + ttl)
        else:
            counts.pop(process, None)
        if not counts:
            del self._audience[guild_id]

    async def get_audience(self, guild_id: int) -> int:
        now = time.monotonic()
        counts = self._audience.get(guild_id, {})
        return sum(count for count, expires in counts.values() if expires > now)

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

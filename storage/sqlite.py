"""SQLite backend (aiosqlite): the embedded default.

One connection in autocommit mode; statements that must be atomic together run inside
`_transaction()`, which serialises them with an asyncio lock (they share the one connection)
and `BEGIN IMMEDIATE` (other processes on the same file wait on busy_timeout instead of failing).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

from storage.base import SessionFields
from storage.codec import (
    STATE_RETENTION_S,
    check_session_fields,
    dump_listener,
    dump_snapshot,
    load_listener,
    load_snapshot,
    state_key,
)
from storage.crypto import TokenCipher
from storage.errors import StorageError, StorageUnavailable
from storage.migrations import MIGRATIONS
from storage.records import (
    CachedStream,
    Failure,
    LinkStatus,
    ListenerState,
    OAuthState,
    Session,
    SpotifyLink,
    StateCheck,
    StateConsumption,
)

P = ParamSpec("P")
R = TypeVar("R")

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
    ]
)


def _sqlite_errors(
    method: Callable[Concatenate[SQLiteStorage, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[SQLiteStorage, P], Coroutine[Any, Any, R]]:
    """Turn driver errors into StorageError / StorageUnavailable with the database named."""

    async def wrapper(self: SQLiteStorage, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except (sqlite3.OperationalError, ValueError) as exc:
            # aiosqlite raises ValueError once the connection is closed.
            raise StorageUnavailable(f"SQLite database {self.path} is unavailable: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"SQLite database {self.path} failed: {exc}") from exc

    return wrapper


class SQLiteStorage:
    def __init__(self, db: aiosqlite.Connection, path: str, cipher: TokenCipher, max_streams: int):
        self._db = db
        self._cipher = cipher
        self._max_streams = max_streams
        self._closed = False
        # aiosqlite has no transaction object: this lock keeps transactions from interleaving
        # on the shared connection.
        self._tx_lock = asyncio.Lock()
        # Lease releases for this process's waiters (SQLite serves one process).
        self._released: set[asyncio.Queue[str]] = set()
        self.path = path
        self.url = f"sqlite:///{path}"

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
        async with self._tx_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

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
        return None if row is None else CachedStream(*row)

    @_sqlite_errors
    async def put_stream(self, entry: CachedStream) -> None:
        async with self._transaction() as db:
            await db.execute(
                f"INSERT OR REPLACE INTO streams ({_STREAM_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
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
        return [CachedStream(*row) for row in rows]

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

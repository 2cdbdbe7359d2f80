"""Game night sessions and their listeners in SQLite."""

from __future__ import annotations

import sqlite3
from typing import Any

from storage.base import SessionFields
from storage.codec import (
    check_session_fields,
    dump_listener,
    dump_snapshot,
    load_listener,
    load_snapshot,
)
from storage.records import (
    ListenerState,
    Session,
)
from storage.sqlite_store.core import SQLiteCore, _sqlite_errors


class SQLiteSessions(SQLiteCore):
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

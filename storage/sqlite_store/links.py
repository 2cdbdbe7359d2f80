"""Spotify links, OAuth states and pending links in SQLite (the linking flow's stores)."""

from __future__ import annotations

import time

from storage.codec import (
    STATE_RETENTION_S,
    dump_pending,
    load_pending,
    state_key,
)
from storage.records import (
    LinkStatus,
    OAuthState,
    PendingLink,
    PendingTake,
    PendingTaker,
    SpotifyLink,
    StateCheck,
    StateConsumption,
)
from storage.sqlite_store.core import SQLiteCore, _sqlite_errors


class SQLiteLinks(SQLiteCore):
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

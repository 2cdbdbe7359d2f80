"""The resolved-stream cache and failed lookups in SQLite (bounded, least recently used out)."""

from __future__ import annotations

from collections.abc import (
    Mapping,
    Sequence,
)
from dataclasses import replace
from typing import Any

from storage.codec import (
    decode_headers,
    encode_headers,
)
from storage.records import (
    CachedStream,
    Failure,
)
from storage.sqlite_store.core import SQLiteCore, _sqlite_errors

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


class SQLiteStreams(SQLiteCore):
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

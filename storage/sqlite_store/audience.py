"""Listen-page browser counts for SQLite: in memory, as one process owns a SQLite file."""

from __future__ import annotations

import time

from storage.sqlite_store.core import SQLiteCore


class SQLiteAudience(SQLiteCore):
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

"""The status message's browser count, when the browsers are on another process.

Wires `core.audience.AudienceWatch` to this process's status board for the game nights whose
sync loops command here (that process keeps their status messages current).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from core.audience import AudienceWatch
from storage.base import Storage
from storage.records import Session

if TYPE_CHECKING:
    from bot.client import GameNightBot
    from core.sync.supervisor import SyncSupervisor


def start_audience_watch(
    bot: GameNightBot, sync: SyncSupervisor | None, store: Storage
) -> AudienceWatch:
    """Start watching (close with `aclose`). `sync` None: no Spotify app, no sync engine (the
    host is followed by presence, bot/__main__.py): this process's shards' guilds."""

    async def loop_guilds() -> list[int]:
        sessions = await store.list_sessions()
        if sync is None:  # no Spotify app: no sync loops; this process's shards keep the messages
            return [s.guild_id for s in sessions if bot.runs_guild(s.guild_id)]
        return commanded_here(sync, sessions)

    def show(guild_id: int, count: int) -> None:
        if bot.board is not None:  # None only before the bot's setup_hook ran
            bot.board.audience_changed(guild_id, count)

    def shown(guild_id: int) -> int | None:
        return None if bot.board is None else bot.board.audience_shown(guild_id)

    watch = AudienceWatch(store, loop_guilds, show, shown=shown)
    watch.start()
    return watch


def commanded_here(sync: SyncSupervisor, sessions: Iterable[Session]) -> list[int]:
    """The guilds whose sync loop here holds the lease. With several processes on one Redis
    every process runs a loop per game night and all but one wait for its lease: counting a
    waiting loop's guild too would have every process edit the one status message on each
    browser change (Discord calls spent twice, and the waiting side renders the stored
    snapshot, not the playback its loop never reads). A hand-over moves the count with the
    lease: the new holder's watch reports the guild as new."""
    found = []
    for session in sessions:
        engine = sync.engines.get(session.guild_id)
        if engine is not None and engine.lease.held:
            found.append(session.guild_id)
    return found

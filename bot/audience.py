"""The status message's browser count, when the browsers are on another process.

Wires `core.audience.AudienceWatch` to this process's status board for the game nights whose
sync loops run here (that process keeps their status messages current).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.audience import AudienceWatch
from storage.base import Storage

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
        return [s.guild_id for s in sessions if sync.engines.get(s.guild_id) is not None]

    def show(guild_id: int, count: int) -> None:
        if bot.board is not None:  # None only before the bot's setup_hook ran
            bot.board.audience_changed(guild_id, count)

    watch = AudienceWatch(store, loop_guilds, show)
    watch.start()
    return watch

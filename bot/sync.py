"""The sync engine wired into the bot: Discord side of its events, and its construction.

`start_sync` builds one `SessionSync` (core/sync/runner.py) whose engines command Spotify
through the shared `SpotifyClient`, store state in the configured storage (with a per-guild
lease, so several processes on one Redis run each guild's loop exactly once), and report
through `DiscordSyncEvents`: playback and listener states go to the status message (the
engine already rate-limits those), things a user must fix go to them by DM, and a session the
engine ends (idle host) is ended through `SessionService`, so every hook and the message hear.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING

from bot.guild_names import guild_name
from core.sessions import SessionService
from core.sync.engine import EngineConfig, SyncEngine, SyncEngines
from core.sync.planner import SyncConfig
from core.sync.ports import SessionStatus
from core.sync.runner import SessionSync
from core.sync.schedule import DriftConfig, PollConfig

if TYPE_CHECKING:
    from bot.client import GameNightBot
    from bot.services import Services
    from bot.settings import Settings

log = logging.getLogger(__name__)


class DiscordSyncEvents:
    """`SyncEvents` for the bot: the status board, DMs, and ending sessions properly."""

    def __init__(self, bot: GameNightBot, sessions: SessionService) -> None:
        self._bot = bot
        self._sessions = sessions

    async def status_changed(self, status: SessionStatus) -> None:
        board = self._bot.board
        if board is not None:  # None only before the bot's setup_hook ran
            await board.show_playback(status.guild_id, status.track, status.is_playing)

    async def notify_user(self, guild_id: int, user_id: int, message: str) -> None:
        name = await guild_name(self._bot, guild_id)  # REST when another shard carries it
        where = f" in {name}" if name is not None else ""
        await self._bot.dm(user_id, f"🎮 Game night{where}: {message}")

    async def session_ended(self, guild_id: int, reason: str) -> None:
        await self._sessions.end(guild_id, reason)


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        poll=PollConfig(interval_s=settings.sync_poll_interval_s),
        sync=SyncConfig(drift_threshold_ms=settings.sync_drift_threshold_ms),
        drift=DriftConfig(interval_s=settings.sync_drift_check_interval_s),
        host_idle_timeout_s=settings.host_idle_timeout_s,
        lease_ttl_s=settings.sync_lease_ttl_s,
    )


async def start_sync(settings: Settings, services: Services, bot: GameNightBot) -> SessionSync:
    """Build the engines and subscribe them to session changes (close with `aclose`)."""
    config = engine_config(settings)
    events = DiscordSyncEvents(bot, services.sessions)
    spotify, store = services.spotify, services.storage
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def engine(guild_id: int) -> SyncEngine:
        return SyncEngine(
            guild_id,
            client=spotify,
            sessions=store,
            events=events,
            config=config,
            leases=store,
            holder=holder,
            hold=lambda: spotify.limiter.blocked_for,
        )

    # Look for sessions without a loop here (another process's, to take over when its lease
    # lapses) as often as a waiting loop retries the lease, and no less often than before.
    sync = SessionSync(SyncEngines(engine), store, rescan_s=min(5.0, config.lease_ttl_s / 3))
    services.sessions.subscribe(sync)
    await sync.start()
    return sync

"""The sync engine wired into the bot: its Discord side, and its construction.

`start_sync` builds one `SyncSupervisor` (core/sync/supervisor.py) whose engines command
Spotify through the shared `SpotifyClient`, store state in the configured storage (with a
per-guild lease held under this process's stable instance identity, so several processes on
one Redis run each guild's loop exactly once and a restarted process gets its guilds back at
once), and report through `DiscordAnnouncer`: playback and listener states go to the status
message, things a user must fix go to them by DM, and a session the engine ends (idle host) is
ended through `SessionService`, so every watcher and the message hear. Each engine's
`Reporter` calls these from its own task with a timeout: none of them is on a sync round.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.guild_names import guild_name
from bot.instance import data_folder, instance_id
from bot.replies import for_discord
from core.sessions import SessionService
from core.sync.clock import Clock
from core.sync.engine import EngineConfig, SyncEngine
from core.sync.identity import InstanceClaim
from core.sync.planner import SyncConfig
from core.sync.reporter import PlaybackReport
from core.sync.schedule import DriftConfig, PollConfig
from core.sync.supervisor import GuildEngines, SyncSupervisor

if TYPE_CHECKING:
    from bot.client import GameNightBot
    from bot.services import Services
    from bot.settings import Settings

log = logging.getLogger(__name__)


class DiscordAnnouncer:
    """`Announcer` for the bot: the status board, DMs, and ending sessions properly."""

    def __init__(self, bot: GameNightBot, sessions: SessionService) -> None:
        self._bot = bot
        self._sessions = sessions

    async def status_changed(self, report: PlaybackReport) -> None:
        board = self._bot.board
        if board is not None:  # None only before the bot's setup_hook ran
            await board.show_playback(
                report.guild_id, report.track, report.is_playing, report.host_unreadable
            )

    async def notify_user(self, guild_id: int, user_id: int, message: str) -> None:
        name = await guild_name(self._bot, guild_id)  # REST when another shard carries it
        where = f" in {name}" if name is not None else ""
        await self._bot.dm(user_id, f"🎮 Game night{where}: {for_discord(message)}")

    async def session_ended(self, guild_id: int, reason: str) -> None:
        await self._sessions.end(guild_id, reason)

    async def session_gone(self, guild_id: int) -> None:
        board = self._bot.board
        if board is not None:
            await board.mark_gone(guild_id)


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        poll=PollConfig(interval_s=settings.sync_poll_interval_s),
        sync=SyncConfig(drift_threshold_ms=settings.sync_drift_threshold_ms),
        drift=DriftConfig(interval_s=settings.sync_drift_check_interval_s),
        host_idle_timeout_s=settings.host_idle_timeout_s,
        lease_ttl_s=settings.sync_lease_ttl_s,
    )


async def start_sync(settings: Settings, services: Services, bot: GameNightBot) -> SyncSupervisor:
    """Build the engines and subscribe them to session changes (close with `aclose`)."""
    config = engine_config(settings)
    announcer = DiscordAnnouncer(bot, services.sessions)
    spotify, store = services.spotify, services.storage
    # One monotonic clock for the engines and the Spotify client's call stamps.
    clock = Clock(now=spotify.timer)
    wanted = instance_id(data_folder(settings.storage_url), settings.instance_id)
    # Two live processes must never share it (both would command): claimed in the store.
    claim = InstanceClaim(store)
    holder = await claim.claim(wanted)
    log.info("sync leases held as instance %s", holder)

    def engine(guild_id: int) -> SyncEngine:
        return SyncEngine(
            guild_id,
            client=spotify,
            sessions=store,
            announcer=announcer,
            config=config,
            leases=store,
            holder=holder,
            hold=lambda: spotify.blocked_for,  # Retry-After and quota holds
            clock=clock,
            health=services.sync_health,
            presence=services.presence,
            governor=spotify.quota,
        )

    # Every second: a session started by another process (another shard) gets a waiting loop
    # here soon, ready to take the guild over within a lease TTL if that process dies.
    sync = SyncSupervisor(GuildEngines(engine), store, store, rescan_s=1.0, identity=claim)
    services.sessions.subscribe(sync)
    await sync.start()
    return sync

"""SessionRecord: what one guild's engine keeps in storage and shows on the status board.

The engine decides; this writes it down. It reads the session (keeping the last one read when
storage fails, so syncing goes on from memory), persists the host snapshot (at most every
`persist_interval_s` unless a host change forces it), reports the status when something a
reader sees changed, and deletes a session that ended idle. Only the lease's holder writes or
reports: one that lost the lease mid-round leaves both to the guild's new holder.
"""

from __future__ import annotations

from core.sync.clock import Clock
from core.sync.health import SyncHealth
from core.sync.host_read import HostReader
from core.sync.lease import GuildLease
from core.sync.listeners import Listeners
from core.sync.reporter import PlaybackReport, Reporter
from core.sync.state import PlayerState
from storage.base import SessionStore
from storage.records import Session


class SessionRecord:
    """One guild's session as stored, its host snapshot and its status report."""

    def __init__(
        self,
        guild_id: int,
        *,
        sessions: SessionStore,
        clock: Clock,
        lease: GuildLease,
        reporter: Reporter,
        health: SyncHealth,
        persist_interval_s: float,
        report_timeout_s: float,
    ) -> None:
        self.guild_id = guild_id
        self._sessions = sessions
        self._clock = clock
        self._lease = lease
        self._reporter = reporter
        self._health = health
        self._persist_interval_s = persist_interval_s
        self._report_timeout_s = report_timeout_s
        self._session: Session | None = None  # as last read (kept when storage fails)
        self._persisted_at = float("-inf")
        self._status_dirty = True

    def mark_status(self) -> None:
        self._status_dirty = True

    def write_failed(self, what: str, error: Exception) -> None:
        self._health.storage_failed(self.guild_id, what, error)

    async def read(self) -> Session | None:
        try:
            session = await self._sessions.get_session(self.guild_id)
        except Exception as error:
            if self._session is None:
                raise
            self.write_failed("reading the session", error)
            return self._session  # keep syncing from memory until storage answers
        self._session = session
        return session

    async def persist(
        self, host: PlayerState, host_id: int | None, host_active_at: float, *, force: bool
    ) -> None:
        if not self._lease.valid():
            return  # lost during the round: the guild's new holder writes its own
        now = self._clock.now()
        if not force and now - self._persisted_at < self._persist_interval_s:
            return
        snapshot = host.to_snapshot(self._clock.to_wall(host.at), host_id)
        try:
            await self._sessions.update_session(
                self.guild_id,
                {
                    "snapshot": snapshot,
                    "host_active_at": self._clock.to_wall(host_active_at),
                },
            )
        except Exception as error:
            self.write_failed("storing the host snapshot", error)
            return
        self._persisted_at = now
        self._health.storage_ok()

    def report(
        self,
        host_id: int,
        host: PlayerState | None,
        host_reader: HostReader,
        listeners: Listeners,
    ) -> None:
        if not self._status_dirty or not self._lease.valid():
            return  # (lost during the round: the new holder reports; this stays dirty)
        self._status_dirty = False
        self._reporter.show(
            PlaybackReport(
                guild_id=self.guild_id,
                host_user_id=host_id,
                track=host_reader.track,
                is_playing=bool(host and host.is_playing) and not host_reader.unreadable,
                listeners=tuple(m.state for m in listeners.members.values()),
                host_unreadable=host_reader.unreadable,
            )
        )

    async def delete_ended(self) -> None:
        """After the bot heard of the end (it deletes the session and edits the message),
        delete it here too in case it could not."""
        await self._reporter.aclose(drain_s=self._report_timeout_s)
        try:
            await self._sessions.delete_session(self.guild_id)
        except Exception as error:
            self.write_failed("deleting the ended session", error)

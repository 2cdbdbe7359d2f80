"""SessionSync: runs a sync loop for every game night, driven by the session hooks.

It is the `SessionHooks` the composition root subscribes to `SessionService`: a started (or,
at process start, resumed) session gets a loop, a change (join, leave, resync, new host) wakes
it so it acts at once, an end stops it. Every `rescan_s` it also starts loops for stored
sessions it never heard of: sessions started by another process sharing Redis storage, whose
guild lease that process stops renewing when it dies (the loop here then takes over).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.sync.engine import SyncEngines
from storage.base import SessionStore
from storage.records import Session

log = logging.getLogger(__name__)


class SessionSync:
    def __init__(self, engines: SyncEngines, sessions: SessionStore, rescan_s: float = 5.0) -> None:
        self.engines = engines
        self._sessions = sessions
        self._rescan_s = rescan_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the rescans (loops themselves start from the hooks)."""
        if self._task is None and self._rescan_s > 0:
            self._task = asyncio.create_task(self._rescan(), name="sync-rescan")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.engines.aclose()

    # --- SessionHooks -------------------------------------------------------------------

    async def session_started(self, session: Session) -> None:
        await self.engines.start(session.guild_id)

    async def session_changed(self, session: Session) -> None:
        if self.engines.get(session.guild_id) is None:
            await self.engines.start(session.guild_id)
        else:
            self.engines.wake(session.guild_id)

    async def session_ended(self, session: Session, reason: str) -> None:
        await self.engines.stop(session.guild_id)

    # --- takeover -----------------------------------------------------------------------

    async def _rescan(self) -> None:
        while True:
            await asyncio.sleep(self._rescan_s)
            try:
                started = await self.engines.resume_all(self._sessions)
            except Exception:
                log.exception("looking for sessions without a sync loop failed")
                continue
            if started:
                log.info("started %d sync loop(s) for sessions found in storage", started)

"""One sync loop per game night in this process: `GuildEngines` keeps them, `SyncSupervisor`
starts, wakes and stops them.

`SyncSupervisor` is the `SessionWatcher` the composition root subscribes to `SessionService`:
a started (or, at process start, resumed) session gets a loop, a change (join, leave, resync,
new host) wakes it so it acts at once, an end stops it. Every `rescan_s` it also starts loops
for stored sessions it never heard of (sessions started by another process sharing Redis). With
several processes every one runs a loop per session, and the guild's lease decides which of
them commands: the others wait, retrying every fraction of the lease TTL, and a release
announced by the store (a clean shutdown) makes them try at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core.stopping import stop_task
from core.sync.engine import SyncEngine
from core.sync.identity import InstanceClaim
from storage.base import LeaseStore, SessionStore
from storage.records import Session

log = logging.getLogger(__name__)

# An engine's close (its loop, its listeners' calls, the lease release) past this is given up:
# a shutdown or a session's end must not wait forever on one stuck guild.
ENGINE_CLOSE_S = 15.0


class GuildEngines:
    """Every session's engine in this process, one per guild."""

    def __init__(self, factory: Callable[[int], SyncEngine]) -> None:
        self._factory = factory
        self._engines: dict[int, SyncEngine] = {}
        # Engines being closed, by guild: a start waits for them (the old engine's lease
        # release would otherwise delete the new one's lease, held under the same name).
        self._closing: dict[int, asyncio.Future[None]] = {}
        self._closed = False

    def get(self, guild_id: int) -> SyncEngine | None:
        engine = self._engines.get(guild_id)
        return engine if engine is not None and engine.running else None

    async def start(self, guild_id: int) -> SyncEngine | None:
        """Run the loop for a stored session (idempotent); None once closed."""
        while (closing := self._closing.get(guild_id)) is not None:
            await asyncio.wait([closing])  # (its errors are the stopper's to see)
            await asyncio.sleep(0)  # its done-callback takes it off the books
        if self._closed:
            return None  # shutting down: a late hook must not start a loop nobody stops
        engine = self.get(guild_id)
        if engine is not None:
            return engine
        # No await between the check above and the new engine running: a session hook and
        # the rescan starting the same guild meanwhile would each run a loop (one holder, so
        # the lease would not stop the second). The stale one is closed once replaced.
        stale = self._engines.pop(guild_id, None)
        engine = self._engines[guild_id] = self._factory(guild_id)
        await engine.start()
        engine.when_done(lambda: self._finished(guild_id, engine))
        if stale is not None:
            await _close(stale)
        return engine

    def _finished(self, guild_id: int, engine: SyncEngine) -> None:
        """A loop ended by itself (session gone, idle): off the books, unless replaced."""
        if self._engines.get(guild_id) is engine:
            del self._engines[guild_id]

    def wake(self, guild_id: int) -> None:
        """A join, leave, resync or host change was stored: act on it now."""
        if (engine := self.get(guild_id)) is not None:
            engine.wake()

    def lease_released(self, name: str) -> None:
        """Another process let a guild go: its loop here tries to take over at once."""
        for engine in self._engines.values():
            if engine.lease.name == name:
                engine.lease.poke()

    async def stop(self, guild_id: int) -> None:
        engine = self._engines.pop(guild_id, None)
        if engine is None:
            return
        closing = self._closing[guild_id] = asyncio.ensure_future(_close(engine))

        def closed(_: object) -> None:
            if self._closing.get(guild_id) is closing:
                del self._closing[guild_id]

        closing.add_done_callback(closed)
        await asyncio.shield(closing)  # (a cancelled stopper leaves the close to finish)

    async def resume_all(self, sessions: SessionStore) -> int:
        """Start loops for stored sessions that have none here; returns how many started."""
        started = 0
        for session in await sessions.list_sessions():
            if self.get(session.guild_id) is None and await self.start(session.guild_id):
                started += 1
        return started

    async def aclose(self) -> None:
        self._closed = True
        engines, self._engines = list(self._engines.values()), {}
        await asyncio.gather(*(_close(engine) for engine in engines))
        await asyncio.gather(*self._closing.values(), return_exceptions=True)


async def _close(engine: SyncEngine) -> None:
    """Close an engine, for at most ENGINE_CLOSE_S (then its lease lapses by its TTL)."""
    try:
        async with asyncio.timeout(ENGINE_CLOSE_S):
            await engine.aclose()
    except TimeoutError:
        log.error(
            "the sync loop of guild %s did not close within %.0f s: left behind",
            engine.guild_id,
            ENGINE_CLOSE_S,
        )


class SyncSupervisor:
    def __init__(
        self,
        engines: GuildEngines,
        sessions: SessionStore,
        leases: LeaseStore | None = None,
        rescan_s: float = 5.0,
        identity: InstanceClaim | None = None,
    ) -> None:
        """`identity`: the claim on the instance id the engines hold leases under (released
        after them on close)."""
        self.engines = engines
        self._identity = identity
        self._sessions = sessions
        self._leases = leases
        self._rescan_s = rescan_s
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def start(self) -> None:
        """Start the rescans and the release watch (loops themselves start from the hooks)."""
        if self._tasks or self._closed:
            return
        if self._rescan_s > 0:
            self._tasks.append(asyncio.create_task(self._rescan(), name="sync-rescan"))
        if self._leases is not None:
            self._tasks.append(asyncio.create_task(self._watch(self._leases), name="sync-leases"))

    async def aclose(self) -> None:
        self._closed = True
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*(stop_task(task) for task in tasks))
        await self.engines.aclose()
        if self._identity is not None:
            await self._identity.aclose()

    # --- SessionWatcher -------------------------------------------------------------------

    async def session_started(self, session: Session) -> None:
        await self.engines.start(session.guild_id)

    async def session_changed(self, session: Session) -> None:
        if self.engines.get(session.guild_id) is None:
            await self.engines.start(session.guild_id)
        else:
            self.engines.wake(session.guild_id)

    async def session_ended(self, session: Session, reason: str) -> None:
        await self.engines.stop(session.guild_id)

    # --- takeover -------------------------------------------------------------------------

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

    async def _watch(self, leases: LeaseStore) -> None:
        """Releases announced by any process; re-subscribes after a storage outage."""
        while True:
            try:
                async for name in leases.lease_releases():
                    self.engines.lease_released(name)
            except Exception as error:
                log.warning("watching for released sync leases failed: %r", error)
            await asyncio.sleep(1.0)

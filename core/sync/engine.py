"""SyncEngine: one guild's sync loop, mirroring the host onto every listener.

Each round (`step`):
 1. re-read the session from storage (the bot writes joins, leaves, resyncs and host changes
    there, possibly from another process) and adopt what changed;
 2. read the host's player, timed locally -> `PlayerState`; `detect` names the change;
 3. read the listeners we know nothing about (joined, resynced, restarted, reopened Spotify),
    whatever the change and outside the drift budget; when the host did not change, spend a
    little of the budget on drift checks of the others;
 4. `plan` one action per listener and hand them to `Listeners.fan_out`, which sends them at
    once, each in its own task with its own timeout, and waits at most `fanout_wait_s`;
 5. persist the host snapshot, hand a status report to the `Reporter`; sleep `next_poll_delay`
    (or until woken).

The round never awaits Discord (the `Reporter` has its own task) and never renews the lease
(the `GuildLease` has its own task); it awaits only storage and Spotify, each bounded.

Reads spent by the quota: with a quota `governor`, `HostSignal` (host_signal.py) decides each
round whether the host is read (and at which priority: COMMAND to confirm a presence change,
END_OF_TRACK just after the predicted end, SAFETY for the paced poll), acts on the host's
Discord presence alone, or extrapolates; and it sets the drift checks' share of the budget.
Every Spotify call carries its priority (listener reads before a command COMMAND, drift checks
DRIFT, commands COMMAND). Without a governor the host is read every round, as before.

Rate limiting is app-wide: while the Spotify client's shared limiter holds every call
(Retry-After, `hold`), a round makes no call at all and sleeps until the hold ends. A 429
marked QUOTA_EXCEEDED is told to the host (host_read.py, at most every ten minutes).

Recovery: per-listener back-off after transient failures is cut short by a host change, and
while listeners back off one of them is probed every `probe_interval_s`; the first command
that gets through clears everyone's back-off, so an outage's end is caught within a second.

Module map: planner/changes/schedule/failures/state/clock are the pure decisions; host_read.py
reads the host (and tells them what only they can fix); listener_reads.py picks and makes the
listener reads, listeners.py the listener command path (devices.py when there is no active
device); host_signal.py the presence signal and the quota's pacing; lease.py the guild lease;
record.py the session's storage (read, snapshot, delete) and its status report, reporter.py
the reporting; supervisor.py runs one engine per guild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

from core.errors import RateLimited
from core.presence import PresenceBoard
from core.stopping import stop_task
from core.sync.changes import Change, HostChange, detect
from core.sync.clock import Clock
from core.sync.config import EngineConfig
from core.sync.health import SyncHealth
from core.sync.host_read import HOST_RELINK, HOST_UNLINKED, QUOTA_NOTICE, HostReader
from core.sync.host_signal import Governor, HostSignal
from core.sync.lease import GuildLease
from core.sync.listeners import Listeners
from core.sync.planner import plan
from core.sync.ports import PlayerClient
from core.sync.record import SessionRecord
from core.sync.reporter import Announcer, Reporter
from core.sync.schedule import (
    RatePressure,
    host_idle_expired,
    next_poll_delay,
)
from core.sync.state import PlayerState
from storage.base import LeaseStore, SessionStore
from storage.records import Session

log = logging.getLogger(__name__)

__all__ = ["HOST_RELINK", "HOST_UNLINKED", "QUOTA_NOTICE", "EngineConfig", "SyncEngine"]


class SyncEngine:
    """Runs one guild's session; `start()` spawns the loop, `aclose()` stops it."""

    def __init__(
        self,
        guild_id: int,
        *,
        client: PlayerClient,
        sessions: SessionStore,
        announcer: Announcer,
        config: EngineConfig | None = None,
        leases: LeaseStore | None = None,
        holder: str = "local",
        hold: Callable[[], float] | None = None,
        clock: Clock | None = None,
        health: SyncHealth | None = None,
        presence: PresenceBoard | None = None,
        governor: Governor | None = None,
    ) -> None:
        """`hold` says how long the Spotify app must not call (the client's shared limiter,
        `SpotifyClient.blocked_for`: Retry-After and QUOTA_EXCEEDED holds; without it only
        429s this engine saw count); `holder` is this process's stable identity.
        With a quota `governor`, reads are scheduled by budget and the host's `presence`
        (core/sync/host_signal.py); without one, the host is read every round."""
        self.guild_id = guild_id
        self._client = client
        self._config = config = config or EngineConfig()
        self._clock = clock = clock or Clock()
        self._hold = hold
        self.health = health or SyncHealth(clock.now)
        self.reporter = Reporter(
            guild_id,
            announcer,
            clock=clock.now,
            interval_s=config.status_interval_s,
            timeout_s=config.report_timeout_s,
        )
        self.lease = GuildLease(
            leases,
            f"sync:{guild_id}",
            holder,
            ttl_s=config.lease_ttl_s,
            clock=clock.now,
            on_change=self.wake,
        )
        self.record = SessionRecord(
            guild_id,
            sessions=sessions,
            clock=clock,
            lease=self.lease,
            reporter=self.reporter,
            health=self.health,
            persist_interval_s=config.persist_interval_s,
            report_timeout_s=config.report_timeout_s,
        )
        self.listeners = Listeners(
            guild_id,
            client=client,
            sessions=sessions,
            reporter=self.reporter,
            lease=self.lease,
            clock=clock,
            sync=config.sync,
            drift=config.drift,
            call_timeout_s=config.call_timeout_s,
            rate_limited=self._rate_limited,
            held=self._held,
            write_failed=self.record.write_failed,
            status_changed=self.record.mark_status,
            recovered=self._recovered,
        )
        self.host_reader = HostReader(
            guild_id,
            client=client,
            clock=clock,
            call_timeout_s=config.call_timeout_s,
            calls=self.listeners.calls,
            rate_limited=self._rate_limited,
            tell=self.reporter.tell,
            status_changed=self.record.mark_status,
        )
        self._lease_generation = self.lease.generation
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._host_id: int | None = None
        self._host: PlayerState | None = None  # latest host observation
        self._host_active_at = 0.0
        self._pressure = RatePressure()
        self.last_change = HostChange()
        self.ended: str | None = None  # why the loop ended ("stopped", "idle"), once it has
        self.signal = HostSignal(
            presence,
            governor,
            wake=self.wake,
            poll=config.poll,
            quota=config.quota,
            tolerance_ms=config.sync.seek_tolerance_ms,
            clock=clock.now,
        )

    @property
    def calls(self) -> Counter[str]:
        """Spotify calls by kind, for metrics and benchmarks."""
        return self.listeners.calls

    # -- lifetime --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self.lease.start()
            self._task = asyncio.create_task(self._run(), name=f"sync-{self.guild_id}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            # (From inside its own loop, e.g. a hook reacting to the engine's own end, the loop
            # is already returning: cancelling it would cut that short.)
            await stop_task(task)  # (bounded, and again if a library lost the first cancel)
        inflight = self.listeners.cancel_all()
        await asyncio.gather(*inflight, return_exceptions=True)
        await self.lease.aclose()
        await self.reporter.aclose()
        self.health.forget(self.guild_id)
        self.signal.close()

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the loop has ended, however it ended."""
        if self._task is not None:
            self._task.add_done_callback(lambda _: callback())

    def wake(self) -> None:
        """Run the next round now (a join, leave or resync was stored; the lease changed)."""
        self._wake.set()

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        failing = False
        try:
            while True:
                try:
                    delay = await self.step()
                    failing = False
                except Exception as error:
                    if failing:  # once per episode: storage may stay down for a while
                        log.debug("sync round failed again for guild %s: %r", self.guild_id, error)
                    else:
                        log.exception("sync round failed for guild %s", self.guild_id)
                    failing = True
                    delay = self._config.poll.interval_s
                self.health.round_done(self.guild_id)
                if delay is not None and not self.lease.held:
                    # Another process commands the guild: the lease wakes us when that changes.
                    delay = max(delay, self._config.lease_ttl_s)
                if delay is None:
                    if self.ended == "idle":
                        await self.record.delete_ended()
                    await self.lease.aclose()
                    return
                # Not asyncio.wait_for: on 3.11 it swallows a cancel that comes as the wait
                # ends (woken or timed out): the loop would go on after aclose() cancelled it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            # However the loop ends (the session gone, idle, cancelled): not a stalled loop.
            self.health.forget(self.guild_id)

    # -- one round -------------------------------------------------------------------------

    async def step(self) -> float | None:
        """One round; the delay until the next, or None when the session is over."""
        started = self._clock.now()
        if not self.lease.valid() and not await self.lease.check():
            return self.lease.retry_s  # the lease's own task wakes us when it is ours
        if self.lease.generation != self._lease_generation:
            # (Re)acquired: another process may have commanded everyone meanwhile.
            self._lease_generation = self.lease.generation
            self._host_id = None
            for listener in self.listeners.members.values():
                listener.forget()
        session = await self.record.read()
        if session is None:
            self.ended = "stopped"
            self.reporter.gone()  # a stop reported by the bot already marked it; else we do
            return None
        self._adopt(session)
        self.signal.follow(session.host_user_id)
        held = self._held()
        if held > 0:
            await self._follow_presence_while_held()
            return held  # Retry-After holds the whole app: no call before it ends

        host = await self._look_at_host(session.host_user_id, started)
        now = self._clock.now()
        if host is None:  # unreadable: look again soon, or when Retry-After allows
            if host_idle_expired(self._host_active_at, now, self._config.host_idle_timeout_s):
                self._end("idle")  # a dead host link counts as idle, never as "paused"
                return None
            self._report(session.host_user_id)
            retry = self._config.poll.interval_s * self._pressure.factor(now)
            return max(retry, self._pressure.wait_s(now))
        change = detect(self._host, host, self._config.sync.seek_tolerance_ms)
        if host.is_playing:
            self._host_active_at = now
        if host_idle_expired(self._host_active_at, now, self._config.host_idle_timeout_s):
            self._end("idle")
            return None
        if change:
            self._recovered()  # the host moved on: nobody waits out an old back-off

        observed = await self.listeners.reads.for_round(
            host, change, self.signal, self._config.fanout_wait_s
        )
        self.listeners.back_offs.probe(now, self._config.probe_interval_s)
        views = self.listeners.views(observed)
        actions = plan(host, views, self._clock.now(), self._config.sync)
        await self.listeners.fan_out(actions, host, observed, self._config.fanout_wait_s)

        self._host = host
        self.last_change = change
        self.signal.expect(self.listeners.reads.expected_tracks(host.track_id))
        if change:
            log.debug("guild %s host change: %s", self.guild_id, change.describe())
            if change.kinds - {Change.SEEK, Change.DEVICE}:
                self.record.mark_status()
        await self.record.persist(host, self._host_id, self._host_active_at, force=bool(change))
        self._report(session.host_user_id)
        # Counted from the round's start, so host reads keep a steady cadence however long
        # the round took (a late read is a late detection of whatever the host did).
        return self._next_delay(host, started)

    def _next_delay(self, host: PlayerState, started: float) -> float:
        if self.signal.active:  # the next read planned by budget and presence
            delay = self.signal.next_delay(host, started, self._pressure)
            # A listener reset (a resync, a timed-out command) is read once their settle window
            # ends, not at the host's next read, which with presence can be minutes away.
            # (One already due was read, or tried, this round: no tight loop on a failing read.)
            dues = [self.listeners.reads.next_read_at()]
            dues += [self.listeners.reads.settled_at(uid) for uid in self.signal.suspected]
            if due := min((d for d in dues if d is not None and d > started), default=None):
                delay = min(delay, due - started)
        else:
            delay = next_poll_delay(host, started, self._config.poll, self._pressure)
        return max(self._config.poll.min_s, delay - (self._clock.now() - started))

    async def _follow_presence_while_held(self) -> None:
        """No Spotify call may go out (Retry-After, QUOTA_EXCEEDED): store what the host's
        presence shows, so the listen page keeps following them meanwhile."""
        if (seen := self.signal.held(self._host)) is not None:
            self._host = seen
            await self.record.persist(seen, self._host_id, self._host_active_at, force=True)

    async def _look_at_host(self, host_id: int, started: float) -> PlayerState | None:
        """This round's host state: read (at the priority `HostSignal` chose), taken from a
        presence change, or extrapolated; None when nothing is known (a failed read)."""
        look = self.signal.look(self._host, started)
        if look.read is None:
            return look.state
        read = await self.host_reader.read(host_id, look.read)
        return self.signal.settle(look, read, self._clock.now())

    def _adopt(self, session: Session) -> None:
        if self._host_id is None:  # first round: resume from what storage remembers
            snapshot = session.snapshot
            theirs = snapshot is not None and snapshot.host_user_id in (None, session.host_user_id)
            self._host = (
                PlayerState.from_snapshot(snapshot, self._clock.from_wall(snapshot.at))
                if snapshot is not None and theirs
                else None
            )
            wall = session.host_active_at or session.created_at
            self._host_active_at = self._clock.from_wall(wall)
        elif session.host_user_id != self._host_id:
            self._host = None  # a new host: their player has no history with us
            self._host_active_at = self._clock.now()
            self.host_reader.new_host()
            # The one edit of ours a hand-over needs: the old host's track must go even when
            # the new host plays nothing (no host change would mark it then).
            self.record.mark_status()
        self._host_id = session.host_user_id

        # Joins, leaves and resyncs are not marked for a status edit: SessionService stored
        # them and has already told the status board, which shows what storage holds.
        self.listeners.adopt(session)

    def _held(self) -> float:
        """Seconds before any Spotify call may go out (Retry-After, app-wide)."""
        held = self._pressure.wait_s(self._clock.now())
        if self._hold is not None:
            held = max(held, self._hold())
        return held

    def _rate_limited(self, error: RateLimited) -> None:
        self._pressure = self._pressure.hit(self._clock.now(), error.retry_after)
        if error.quota_exceeded and self._host_id is not None:
            self.host_reader.quota_exceeded(self._host_id, error)

    def _recovered(self) -> None:
        """Spotify answers commands again (or the host moved on): end every back-off now."""
        if self.listeners.back_offs.end():
            self.wake()

    def _report(self, host_id: int) -> None:
        self.record.report(host_id, self._host, self.host_reader, self.listeners)

    def _end(self, reason: str) -> None:
        self.ended = reason
        log.info("guild %s: session ended (%s)", self.guild_id, reason)
        # The bot ends it (SessionService.end: deleted, every hook told, the message edited),
        # through the reporter's task, off the loop; `record.delete_ended` covers a bot that
        # could not.
        self.reporter.end(reason)

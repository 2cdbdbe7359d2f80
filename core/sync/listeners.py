"""The listener command path: commands for one guild's listeners, and what follows.

`Listeners` holds the engine's working memory about each listener (`Listener`) and carries out
the planner's actions: every command in its own task with its own timeout, a 404 retried once
on a listed device (devices.py), failures mapped by `failures.classify` to statuses, retry
times and private notices. Which listeners a round reads, and the reads: listener_reads.py.

Three guarantees live here:
 - the position of a play or seek is computed in the Spotify client's worker thread at the
   moment the request is sent (`PositionAt`), not when the round planned it, so queueing in the
   limiter and the thread pool does not make it land late;
 - a command that is not yet sent when its timeout passes, or when this process's lease is no
   longer valid (fencing), is never sent: a late play cannot restart a listener at a stale
   position, and a loop that lost its guild cannot command it;
 - a command that timed out leaves the listener unknown, so they are read (after the settle
   window) before they are commanded again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace

from core.errors import NoActiveDevice, RateLimited
from core.spotify.quota import CallPriority
from core.sync.clock import Clock
from core.sync.devices import find_device, plan_on_device, unplaced
from core.sync.failures import Verdict, classify
from core.sync.lease import GuildLease
from core.sync.listener import BackOffs, Listener, PositionAt, StaleCommand
from core.sync.listener_reads import ListenerReads
from core.sync.planner import (
    Action,
    Command,
    ListenerView,
    Mark,
    Nothing,
    Pause,
    Play,
    Resume,
    Seek,
    SyncConfig,
    belief_after,
)
from core.sync.ports import PlayerClient
from core.sync.reporter import Reporter
from core.sync.schedule import DriftConfig
from core.sync.state import PlayerState
from storage.base import SessionStore
from storage.records import ListenerStatus, Session

log = logging.getLogger(__name__)

# Commands (and the device lookup a command needs) follow a host change or a join: a person is
# waiting on them, so they are the quota's first priority (core/spotify/quota.py).
COMMAND = CallPriority.COMMAND

# Statuses a listener is told about when they get them (only they can act on them).
TOLD = frozenset(
    {ListenerStatus.NO_DEVICE, ListenerStatus.NEEDS_RELINK, ListenerStatus.PREMIUM_REQUIRED}
)


class Listeners:
    """One guild's listeners: their memory, reads and commands."""

    def __init__(
        self,
        guild_id: int,
        *,
        client: PlayerClient,
        sessions: SessionStore,
        reporter: Reporter,
        lease: GuildLease,
        clock: Clock,
        sync: SyncConfig,
        drift: DriftConfig,
        call_timeout_s: float,
        rate_limited: Callable[[RateLimited], None],
        held: Callable[[], float],
        write_failed: Callable[[str, Exception], None],
        status_changed: Callable[[], None],
        recovered: Callable[[], None],
    ) -> None:
        self.guild_id = guild_id
        self._client = client
        self._sessions = sessions
        self._reporter = reporter
        self._lease = lease
        self._clock = clock
        self._sync = sync
        self._timeout = call_timeout_s
        self._rate_limited = rate_limited
        self._held = held
        self._write_failed = write_failed
        self._status_changed = status_changed
        self._recovered = recovered
        self.members: dict[int, Listener] = {}
        self.calls: Counter[str] = Counter()  # Spotify calls by kind, for metrics and benchmarks
        self.back_offs = BackOffs(self.members)
        self.reads = ListenerReads(
            guild_id,
            members=self.members,
            client=client,
            clock=clock,
            sync=sync,
            drift=drift,
            call_timeout_s=call_timeout_s,
            calls=self.calls,
            rate_limited=rate_limited,
        )

    def views(self, observed: Mapping[int, PlayerState]) -> dict[int, ListenerView]:
        """Every listener without a command still out (its result will update the belief)."""
        return {uid: m.view(observed.get(uid)) for uid, m in self.members.items() if not m.busy}

    def adopt(self, session: Session) -> None:
        """Follow the stored listeners: joins, leaves, and resyncs (written by someone else)."""
        stored = {uid: s for uid, s in session.listeners.items() if uid != session.host_user_id}
        for uid in self.members.keys() - stored.keys():
            gone = self.members.pop(uid)
            if gone.inflight is not None:
                gone.inflight.cancel()  # they left: a late failure must not re-add them
        for uid, state in stored.items():
            mine = self.members.get(uid)
            if mine is None:
                # A status that asks them to act was told when it was stored (maybe by this
                # process before a restart, or by another): not told again.
                told = {state.status} if state.status in TOLD else set()
                self.members[uid] = Listener(state, told=told, seen=state)
            elif mine.written_by_someone_else(state):
                # /gamenight resync (ATTACHED), stored by the bot, maybe on another machine.
                # Told apart from our own writes by value, not by `updated_at`: two machines'
                # clocks need not agree, and one running behind would make a resync look
                # older than our last write and be ignored.
                if state.status is ListenerStatus.ATTACHED:
                    mine.forget()
                mine.state = state

    def cancel_all(self) -> list[asyncio.Task[None]]:
        tasks = [m.inflight for m in self.members.values() if m.inflight is not None]
        for task in tasks:
            task.cancel()
        return tasks

    # -- commands ----------------------------------------------------------------------------

    async def fan_out(
        self,
        actions: Mapping[int, Action],
        host: PlayerState,
        observed: Mapping[int, PlayerState],
        wait_s: float,
    ) -> None:
        """Every listener's action at once; wait for them at most `wait_s`."""
        tasks: list[asyncio.Task[None]] = []
        for uid, action in actions.items():
            listener = self.members[uid]
            if isinstance(action, Nothing):  # no I/O: no task
                view = listener.view(observed.get(uid))
                listener.belief = belief_after(view, action, host, None, self._sync)
                continue
            task = asyncio.create_task(
                self._apply(listener, action, host, observed.get(uid)), name=f"sync-{uid}"
            )
            listener.inflight = task
            tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=wait_s)

    async def _apply(
        self,
        listener: Listener,
        action: Command | Mark,
        host: PlayerState,
        seen: PlayerState | None,
    ) -> None:
        """Carry out one listener's action; never raises (one listener never stops a round)."""
        view = listener.view(seen)
        match action:
            case Mark():  # the belief stays: a Mark changes nothing on their player
                no_device = action.status is ListenerStatus.NO_DEVICE
                if no_device:
                    listener.look_for_device_later(self._clock.now())
                await self.set_status(listener, action.status, action.detail, tell=no_device)
            case _:
                await self._command(listener, view, action, host)

    async def _send(self, listener: Listener, action: Command, host: PlayerState) -> PositionAt:
        uid = listener.state.user_id
        position = PositionAt(
            host,
            listener.latency,
            self._clock,
            self._clock.now() + self._timeout,
            self._lease,
            lead_ms=self._sync.start_lead_ms,
        )
        if not self._lease.valid():
            raise StaleCommand("the sync lease is no longer ours")
        match action:
            case Play() | Resume():
                self.calls["play"] += 1
                await self._client.play(
                    uid, action.track_uri, position, action.device_id, priority=COMMAND
                )
            case Seek():
                self.calls["seek"] += 1
                await self._client.seek(uid, position, action.device_id, priority=COMMAND)
            case Pause():
                self.calls["pause"] += 1
                await self._client.pause(
                    uid, action.device_id, priority=COMMAND, guard=position.guard
                )
        return position

    async def _command(
        self, listener: Listener, view: ListenerView, action: Command, host: PlayerState
    ) -> None:
        device_tried = False
        try:
            if unplaced(listener, view, action):
                # Still no device after they were told to open Spotify: a play would only 404.
                # List their devices (one call) and play only on one that is listed.
                retarget = await self._retarget(listener, view, host)
                if retarget is None:
                    listener.look_for_device_later(self._clock.now())
                    return
                view, action = retarget
                device_tried = True
            while True:
                sent = listener.commanded_at = self._clock.now()
                try:
                    async with asyncio.timeout(self._timeout):
                        position = await self._send(listener, action, host)
                except StaleCommand as withheld:
                    log.info("guild %s: command withheld: %s", self.guild_id, withheld)
                    listener.belief = None  # unknown: read before the next command
                    return
                except Exception as caught:
                    retarget = await self._failed(
                        listener, view, action, host, caught=caught, device_tried=device_tried
                    )
                    if retarget is None:
                        return
                    device_tried = True
                    view, action = retarget
                    continue
                await self._accepted(listener, view, action, host, sent=sent, position=position)
                return
        finally:
            listener.device_id = None  # a picked device serves this command only

    async def _accepted(
        self,
        listener: Listener,
        view: ListenerView,
        action: Command,
        host: PlayerState,
        *,
        sent: float,
        position: PositionAt,
    ) -> None:
        answered = self._clock.now()
        if position.sent is not None:  # measured from the moment the request really left
            sent, at_ms = position.sent
            if isinstance(action, Play | Resume | Seek):
                action = replace(action, position_ms=at_ms)
        rtt = answered - sent
        listener.latency = listener.latency.observe(rtt)
        landed = sent + rtt / 2
        listener.belief = belief_after(view, action, host, landed, self._sync)
        listener.last_commanded = landed
        was_failing = listener.backing_off
        listener.failures = 0
        listener.retry_at = 0.0
        if was_failing:
            self._recovered()
        listener.no_device_looks = 0
        if listener.state.status is not ListenerStatus.ATTACHED:
            listener.told.clear()  # truly back: a later problem is news again
            await self.set_status(listener, ListenerStatus.ATTACHED, "", tell=False)

    async def _failed(
        self,
        listener: Listener,
        view: ListenerView,
        action: Command,
        host: PlayerState,
        *,
        caught: Exception,
        device_tried: bool,
    ) -> tuple[ListenerView, Command] | None:
        """Fold a failure in; a command re-planned for a listed device when worth a retry."""
        now = self._clock.now()
        error: Exception = caught
        if isinstance(caught, TimeoutError) and (held := self._held()) > 0:
            # It timed out waiting in the app's limiter, not on the listener's Spotify.
            error = RateLimited("held by Retry-After", retry_after=held)
        verdict = classify(
            error, action, now=now, failures=listener.failures, device_tried=device_tried
        )
        if verdict.pick_device and not device_tried:
            retarget = await self._retarget(listener, view, host)
            if retarget is not None:
                return retarget
            verdict = classify(NoActiveDevice("no device"), action, now=now, device_tried=True)
        await self._fold(listener, view, action, host, error=error, verdict=verdict)
        return None

    async def _fold(
        self,
        listener: Listener,
        view: ListenerView,
        action: Command,
        host: PlayerState,
        *,
        error: Exception,
        verdict: Verdict,
    ) -> None:
        if verdict.done:
            listener.belief = belief_after(view, action, host, self._clock.now(), self._sync)
            return
        uid = listener.state.user_id
        log.info("guild %s: %s to %s failed: %r", self.guild_id, action, uid, error)
        if isinstance(error, RateLimited):
            self._rate_limited(error)
        if isinstance(error, TimeoutError):
            # It may still land (a request already on the wire): unknown until read again,
            # and given as long again to land first, so a second command cannot be overtaken
            # by the late one (which would restart them at a stale position).
            listener.belief = None
            listener.commanded_at = self._clock.now() + self._timeout
        else:
            listener.belief = belief_after(view, action, host, None, self._sync)
        listener.retry_at = verdict.retry_at
        if verdict.status is ListenerStatus.NO_DEVICE:
            listener.look_for_device_later(self._clock.now())
        if verdict.transient:
            listener.failures += 1
        if verdict.status is not None:
            await self.set_status(listener, verdict.status, verdict.detail, tell=verdict.tell_user)

    async def _retarget(
        self, listener: Listener, view: ListenerView, host: PlayerState
    ) -> tuple[ListenerView, Command] | None:
        """Aim at one of the listener's devices; the command re-planned for it, if any."""
        listener.device_id = await find_device(
            self._client,
            listener.state.user_id,
            timeout_s=self._timeout,
            calls=self.calls,
            guild_id=self.guild_id,
        )
        if listener.device_id is None:
            return None
        return plan_on_device(view, listener.device_id, host, self._clock.now(), self._sync)

    # -- statuses ----------------------------------------------------------------------------

    async def set_status(
        self, listener: Listener, status: ListenerStatus, detail: str, *, tell: bool
    ) -> None:
        """Store and show a listener's new status; tell them once when they must act."""
        uid = listener.state.user_id
        if self.members.get(uid) is not listener:
            return  # they left while the command was out
        listener.state = replace(
            listener.state, status=status, detail=detail, updated_at=self._clock.wall()
        )
        listener.wrote(listener.state)
        self._status_changed()
        try:
            # Not put_listener: they may have left since this round read the session, and a
            # late status write must not add them back (they would be commanded again).
            present = await self._sessions.update_listener(self.guild_id, listener.state)
        except Exception as error:
            self._write_failed(f"storing listener {uid}", error)  # kept in memory meanwhile
            present = True
        if not present:
            self.members.pop(uid, None)
            return  # gone: not told about a session they left
        if tell and status not in listener.told:
            listener.told.add(status)
            self._reporter.tell(uid, detail)

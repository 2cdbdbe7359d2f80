"""SyncEngine: one asyncio task per session that mirrors the host onto every listener.

Each round:
 1. re-read the session from storage (the bot writes joins, leaves, resyncs and host changes
    there, possibly from another process) and adopt what changed;
 2. read the host's player, timed locally -> `PlayerState`; `detect` names the change;
 3. when the host did not change, spend a little of the API budget reading some listeners
    (drift checks, and first reads of listeners we know nothing about);
 4. `plan` one action per listener and fan the commands out at once, each in its own task with
    its own timeout. The round waits for them at most `fanout_wait_s`: a listener whose call
    hangs keeps its task (and is left out of planning until it ends) while the loop goes on
    polling and commanding everyone else, so one slow or failing listener never delays others;
 5. fold results back: new beliefs, latency samples, statuses (stored, shown, told once);
 6. persist the host snapshot; sleep `next_poll_delay` (or until woken).

Rate limiting is app-wide: while the Spotify client's shared limiter holds every call
(Retry-After, `hold`), a round makes no call at all and sleeps until the hold ends; the next
round reconciles everyone with the host's state at that moment, so nothing is lost meanwhile.
A 429 marked QUOTA_EXCEEDED is told to the host (at most every `QUOTA_NOTICE_EVERY_S`).

With a `LeaseStore`, the loop only commands while it holds the guild's lease, renewed every
round, so exactly one process runs a guild's loop; `SyncEngines.resume_all`, called every few
seconds, starts a loop for a guild whose lease another process stopped renewing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from core.errors import NoActiveDevice, NotFound, NotLinked, RateLimited, TokenRevoked
from core.presence import PresenceBoard
from core.spotify.quota import CallPriority
from core.sync.changes import Change, HostChange, detect
from core.sync.clock import Latency
from core.sync.failures import NO_DEVICE_RETRY_S, Verdict, classify
from core.sync.host_signal import Governor, HostSignal
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
    plan,
    plan_listener,
)
from core.sync.ports import PlayerClient, SessionStatus, SyncEvents, observation, pick_device
from core.sync.schedule import (
    Budget,
    DriftCandidate,
    DriftConfig,
    PollConfig,
    QuotaConfig,
    RatePressure,
    host_idle_expired,
    next_poll_delay,
    pick_drift_checks,
)
from core.sync.state import PlayerState
from core.tracks import TrackInfo
from storage.base import LeaseStore, SessionStore
from storage.records import ListenerState, ListenerStatus, Session

log = logging.getLogger(__name__)

QUOTA_NOTICE_EVERY_S = 600.0
QUOTA_NOTICE = (
    "Spotify says this bot has used up its API quota for now, so syncing is paused. "
    "It resumes by itself when Spotify allows it again."
)
HOST_RELINK = "Your Spotify link expired — run /link again to host"
HOST_UNLINKED = "Your Spotify isn't linked any more — run /link again to host"


@dataclass(frozen=True)
class EngineConfig:
    poll: PollConfig = field(default_factory=PollConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    call_timeout_s: float = 3.0  # per Spotify call; a listener past it is retried later
    host_idle_timeout_s: float = 1800.0  # 0 disables
    status_interval_s: float = 3.0  # at most one status message edit this often
    persist_interval_s: float = 10.0  # snapshot written at least this often (and on changes)
    lease_ttl_s: float = 15.0
    fanout_wait_s: float = 1.0  # a round waits this long for its commands, then moves on
    quota: QuotaConfig = field(default_factory=QuotaConfig)  # with a governor (host_signal.py)


@dataclass
class _Listener:
    """The engine's working memory about one listener (the stored part is `state`)."""

    state: ListenerState
    belief: PlayerState | None = None
    latency: Latency = field(default_factory=Latency)
    device_id: str | None = None
    retry_at: float = 0.0
    failures: int = 0
    last_checked: float = 0.0
    last_commanded: float = 0.0
    told: set[ListenerStatus] = field(default_factory=set)
    inflight: asyncio.Task[None] | None = None  # a command still out (the round moved on)

    @property
    def busy(self) -> bool:
        return self.inflight is not None and not self.inflight.done()

    def view(self, observed: PlayerState | None) -> ListenerView:
        return ListenerView(
            user_id=self.state.user_id,
            status=self.state.status,
            belief=self.belief,
            observed=observed,
            latency=self.latency,
            device_id=self.device_id,
            retry_at=self.retry_at,
        )

    def forget(self) -> None:
        """Back to knowing nothing (resync, lease regained): the next round reads them first."""
        self.belief = None
        self.retry_at = 0.0
        self.failures = 0
        self.last_checked = 0.0


class SyncEngine:
    """Runs one guild's session; `start()` spawns the loop, `aclose()` stops it."""

    def __init__(
        self,
        guild_id: int,
        *,
        client: PlayerClient,
        sessions: SessionStore,
        events: SyncEvents,
        config: EngineConfig | None = None,
        leases: LeaseStore | None = None,
        holder: str | None = None,
        hold: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.time,
        presence: PresenceBoard | None = None,
        governor: Governor | None = None,
    ) -> None:
        """`hold` says how long the Spotify app must not call (the client's shared limiter,
        `SpotifyClient.limiter.blocked_for`); without it only 429s this engine saw count.
        With a quota `governor`, reads are scheduled by budget and the host's `presence`
        (core/sync/host_signal.py); without one, the host is read every round."""
        self.guild_id = guild_id
        self._client = client
        self._sessions = sessions
        self._events = events
        self._config = config or EngineConfig()
        self._leases = leases
        self._holder = holder or uuid.uuid4().hex
        self._clock = clock
        self._hold = hold
        self._quota_told_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._listeners: dict[int, _Listener] = {}
        self._host_id: int | None = None
        self._host: PlayerState | None = None  # latest host observation
        self._track: TrackInfo | None = None
        self._host_told = False  # the host was told their link is dead
        self._host_active_at = 0.0
        self._pressure = RatePressure()
        self._budget = Budget.per_minute(
            self._config.drift.calls_per_minute, self._config.drift.burst, clock()
        )
        self._lease_held = self._leases is None
        self._lease_renewed = 0.0
        self._persisted_at = 0.0
        self._status_dirty = True
        self._status_at = 0.0
        self.last_change = HostChange()
        self.calls: Counter[str] = Counter()  # Spotify calls by kind, for metrics and benchmarks
        self.ended: str | None = None  # why the loop ended ("stopped", "idle"), once it has
        self.signal = HostSignal(
            presence,
            governor,
            wake=self.wake,
            poll=self._config.poll,
            quota=self._config.quota,
            tolerance_ms=self._config.sync.seek_tolerance_ms,
            clock=clock,
        )

    # -- lifetime --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sync-{self.guild_id}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            # (From inside its own loop, e.g. a hook reacting to the engine's own end, the loop
            # is already returning: cancelling it would cut that short.)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        inflight = [lst.inflight for lst in self._listeners.values() if lst.busy]
        for command in inflight:
            if command is not None:
                command.cancel()
        await asyncio.gather(*(c for c in inflight if c is not None), return_exceptions=True)
        await self._release_lease()
        self.signal.close()

    async def _release_lease(self) -> None:
        if self._leases is not None and self._lease_held:
            with contextlib.suppress(Exception):
                await self._leases.release_lease(self._lease_name, self._holder)
            self._lease_held = False

    def wake(self) -> None:
        """Run the next round now (a join, leave or resync was just stored)."""
        self._wake.set()

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            try:
                delay = await self.step()
            except Exception:
                log.exception("sync round failed for guild %s", self.guild_id)
                delay = self._config.poll.interval_s
            if delay is None:
                await self._release_lease()
                return
            if self._leases is not None:
                # However long the wait (Retry-After, idle host), renew the lease in time.
                delay = min(delay, self._config.lease_ttl_s / 3)
            # Not asyncio.wait_for: on 3.11 it swallows a cancel that comes as the wait ends
            # (woken or timed out), and the loop would go on after aclose() cancelled it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()

    # -- one round -------------------------------------------------------------------------

    async def step(self) -> float | None:
        """One round; the delay until the next, or None when the session is over."""
        started = self._clock()
        if not await self._hold_lease():
            return self._config.lease_ttl_s / 3
        session = await self._sessions.get_session(self.guild_id)
        if session is None:
            self.ended = "stopped"
            return None
        self._adopt(session)
        self.signal.follow(session.host_user_id)
        held = self._held()
        if held > 0:
            if (seen := self.signal.held(self._host)) is not None:
                self._host = seen  # the listen page keeps following the host's presence
                await self._persist(seen, force=True)
            return held  # Retry-After holds the whole app: no call before it ends

        look = self.signal.look(self._host, started)
        host = look.state
        if look.read is not None:
            read = await self._read_host(session.host_user_id, look.read)
            host = self.signal.settle(look, read, self._clock())
        now = self._clock()
        if host is None:  # the read failed: look again soon, or when Retry-After allows
            retry = self._config.poll.interval_s * self._pressure.factor(now)
            return max(retry, self._pressure.wait_s(now))
        change = detect(self._host, host, self._config.sync.seek_tolerance_ms)
        if host.is_playing:
            self._host_active_at = now
        if host_idle_expired(self._host_active_at, now, self._config.host_idle_timeout_s):
            await self._end("idle")
            return None

        observed = {} if change else await self._drift_checks(host)
        actions = plan(host, self._views(observed), self._clock(), self._config.sync)
        await self._fan_out(actions, host, observed)

        self._host = host
        self.last_change = change
        if change:
            log.debug("guild %s host change: %s", self.guild_id, change.describe())
            self._status_dirty |= bool(change.kinds - {Change.SEEK, Change.DEVICE})
        await self._persist(host, force=bool(change))
        await self._flush_status(session.host_user_id)
        # Counted from the round's start, so host reads keep a steady cadence however long
        # the round took (a late read is a late detection of whatever the host did).
        if self.signal.active:
            delay = self.signal.next_delay(host, started, self._pressure)
        else:
            delay = next_poll_delay(host, started, self._config.poll, self._pressure)
        return max(self._config.poll.min_s, delay - (self._clock() - started))

    def _adopt(self, session: Session) -> None:
        if self._host_id is None:  # first round: resume from what storage remembers
            self._host = PlayerState.from_snapshot(session.snapshot) if session.snapshot else None
            self._host_active_at = session.host_active_at or session.created_at
        elif session.host_user_id != self._host_id:
            self._host = None  # a new host: their player has no history with us
            self._host_active_at = self._clock()
            # The one edit of ours a hand-over needs: the old host's track must go even when
            # the new host plays nothing (no host change would mark it then).
            self._status_dirty = True
        self._host_id = session.host_user_id

        # Joins, leaves and resyncs are not marked for a status edit: SessionService stored
        # them and has already told the status board, which shows what storage holds.
        stored = {uid: s for uid, s in session.listeners.items() if uid != session.host_user_id}
        for uid in self._listeners.keys() - stored.keys():
            gone = self._listeners.pop(uid)
            if gone.inflight is not None:
                gone.inflight.cancel()  # they left: a late failure must not re-add them
        for uid, state in stored.items():
            mine = self._listeners.get(uid)
            if mine is None:
                self._listeners[uid] = _Listener(state, device_id=state.device_id)
            elif state.status != mine.state.status:
                # Someone else wrote it: /gamenight resync (ATTACHED), or the bot's view.
                if state.status is ListenerStatus.ATTACHED:
                    mine.forget()
                    mine.told.clear()
                mine.state = state

    def _views(self, observed: Mapping[int, PlayerState]) -> dict[int, ListenerView]:
        """Every listener without a command still out (its result will update the belief)."""
        return {
            uid: lst.view(observed.get(uid)) for uid, lst in self._listeners.items() if not lst.busy
        }

    def _held(self) -> float:
        """Seconds before any Spotify call may go out (Retry-After, app-wide)."""
        held = self._pressure.wait_s(self._clock())
        if self._hold is not None:
            held = max(held, self._hold())
        return held

    async def _fan_out(
        self, actions: Mapping[int, Action], host: PlayerState, observed: Mapping[int, PlayerState]
    ) -> None:
        """Every listener's action at once; wait for them at most `fanout_wait_s`."""
        tasks: list[asyncio.Task[None]] = []
        for uid, action in actions.items():
            if isinstance(action, Nothing):  # no I/O: no task
                listener = self._listeners[uid]
                view = listener.view(observed.get(uid))
                listener.belief = belief_after(view, action, host, None, self._config.sync)
                continue
            task = asyncio.create_task(
                self._apply(uid, action, host, observed.get(uid)), name=f"sync-{uid}"
            )
            self._listeners[uid].inflight = task
            tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=self._config.fanout_wait_s)

    async def _rate_limited(self, error: RateLimited) -> None:
        now = self._clock()
        self._pressure = self._pressure.hit(now, error.retry_after)
        if not error.quota_exceeded or self._host_id is None:
            return
        if now - self._quota_told_at < QUOTA_NOTICE_EVERY_S:
            return
        self._quota_told_at = now
        log.warning("guild %s: Spotify quota exceeded; telling the host", self.guild_id)
        try:
            await self._events.notify_user(self.guild_id, self._host_id, QUOTA_NOTICE)
        except Exception:
            log.exception("guild %s: telling the host about the quota failed", self.guild_id)

    # -- Spotify calls ---------------------------------------------------------------------

    async def _read_host(
        self, host_id: int, priority: CallPriority = CallPriority.COMMAND
    ) -> PlayerState | None:
        requested = self._clock()
        try:
            async with asyncio.timeout(self._config.call_timeout_s):
                self.calls["host_read"] += 1
                playback = await self._client.playback(host_id, priority=priority)
        except RateLimited as error:
            await self._rate_limited(error)
            return None
        except (TokenRevoked, NotLinked) as error:
            # Only they can fix it (/link): tell them once and count them as idle, so the idle
            # timeout still ends a session nobody can sync.
            await self._notify_once_host(host_id, unlinked=isinstance(error, NotLinked))
            return PlayerState.idle(requested)
        except Exception as error:
            log.warning("guild %s: host read failed: %r", self.guild_id, error)
            return None
        self._host_told = False
        self._track = playback.track if playback is not None else None
        return observation(playback, requested, self._clock())

    async def _notify_once_host(self, host_id: int, *, unlinked: bool) -> None:
        if self._host_told:
            return
        self._host_told = True
        with contextlib.suppress(Exception):
            await self._events.notify_user(
                self.guild_id, host_id, HOST_UNLINKED if unlinked else HOST_RELINK
            )

    async def _drift_checks(self, host: PlayerState) -> dict[int, PlayerState]:
        now = self._clock()
        if (rate := self.signal.drift_rate_per_s()) is not None:
            if rate <= 0:
                return {}
            self._budget = replace(self._budget, rate_per_s=rate)  # the quota's share
        candidates = [
            DriftCandidate(uid, lst.last_checked, lst.last_commanded, lst.belief is not None)
            for uid, lst in self._listeners.items()
            if lst.state.status in (ListenerStatus.ATTACHED, ListenerStatus.ERROR)
            and lst.retry_at <= now
            and not lst.busy
        ]
        picked, self._budget = pick_drift_checks(
            candidates, host, now, self._budget, self._config.drift
        )
        if not picked:
            return {}
        reads = {uid: asyncio.create_task(self._read_listener(uid)) for uid in picked}
        _, late = await asyncio.wait(reads.values(), timeout=self._config.fanout_wait_s)
        for task in late:
            task.cancel()  # a read that late is stale anyway; the round goes on without it
        return {
            uid: seen
            for uid, task in reads.items()
            if task not in late and (seen := task.result()) is not None
        }

    async def _read_listener(self, uid: int) -> PlayerState | None:
        requested = self._clock()
        try:
            async with asyncio.timeout(self._config.call_timeout_s):
                self.calls["listener_read"] += 1
                playback = await self._client.playback(uid, priority=CallPriority.DRIFT)
        except RateLimited as error:
            await self._rate_limited(error)
            return None
        except Exception as error:
            log.info("guild %s: reading listener %s failed: %r", self.guild_id, uid, error)
            return None
        answered = self._clock()
        listener = self._listeners[uid]
        listener.last_checked = answered
        listener.latency = listener.latency.observe(answered - requested)
        return observation(playback, requested, answered)

    async def _send(self, uid: int, action: Command) -> None:
        match action:
            case Play() | Resume():
                self.calls["play"] += 1
                await self._client.play(uid, action.track_uri, action.position_ms, action.device_id)
            case Seek():
                self.calls["seek"] += 1
                await self._client.seek(uid, action.position_ms, action.device_id)
            case Pause():
                self.calls["pause"] += 1
                await self._client.pause(uid, action.device_id)

    async def _apply(
        self, uid: int, action: Command | Mark, host: PlayerState, observed: PlayerState | None
    ) -> None:
        """Carry out one listener's action; never raises (one listener never stops a round)."""
        listener = self._listeners[uid]
        view = listener.view(observed)
        match action:
            case Mark():  # the belief stays: a Mark changes nothing on their player
                no_device = action.status is ListenerStatus.NO_DEVICE
                if no_device:
                    listener.retry_at = self._clock() + NO_DEVICE_RETRY_S
                await self._set_status(listener, action.status, action.detail, tell=no_device)
            case _:
                await self._command(listener, view, action, host)

    async def _command(
        self, listener: _Listener, view: ListenerView, action: Command, host: PlayerState
    ) -> None:
        uid = listener.state.user_id
        device_tried = False
        while True:
            sent = self._clock()
            try:
                async with asyncio.timeout(self._config.call_timeout_s):
                    await self._send(uid, action)
            except Exception as caught:
                now = self._clock()
                error: Exception = caught
                if isinstance(caught, TimeoutError) and (held := self._held()) > 0:
                    # It timed out waiting in the app's limiter, not on the listener's Spotify.
                    error = RateLimited("held by Retry-After", retry_after=held)
                verdict = classify(
                    error, action, now=now, failures=listener.failures, device_tried=device_tried
                )
                if verdict.pick_device and not device_tried:
                    device_tried = True
                    retarget = await self._retarget(listener, view, host)
                    if retarget is not None:
                        view, action = retarget
                        continue
                    verdict = classify(
                        NoActiveDevice("no device"), action, now=now, device_tried=True
                    )
                await self._failed(listener, view, action, host, error=error, verdict=verdict)
                return
            rtt = self._clock() - sent
            listener.latency = listener.latency.observe(rtt)
            listener.belief = belief_after(view, action, host, sent + rtt / 2, self._config.sync)
            listener.last_commanded = sent + rtt / 2
            listener.failures = 0
            listener.retry_at = 0.0
            if listener.state.status is not ListenerStatus.ATTACHED:
                await self._set_status(listener, ListenerStatus.ATTACHED, "", tell=False)
            return

    async def _retarget(
        self, listener: _Listener, view: ListenerView, host: PlayerState
    ) -> tuple[ListenerView, Command] | None:
        """Aim at one of the listener's devices; the command re-planned for it, if any."""
        listener.device_id = await self._find_device(listener.state.user_id)
        if listener.device_id is None:
            return None
        view = replace(view, device_id=listener.device_id)
        action = plan_listener(host, view, self._clock(), self._config.sync)
        if isinstance(action, Nothing | Mark):
            return None
        return view, action

    async def _failed(
        self,
        listener: _Listener,
        view: ListenerView,
        action: Command,
        host: PlayerState,
        *,
        error: Exception,
        verdict: Verdict,
    ) -> None:
        now = self._clock()
        if verdict.done:
            listener.belief = belief_after(view, action, host, now, self._config.sync)
            return
        log.info("guild %s: %s to %s failed: %r", self.guild_id, action, view.user_id, error)
        if isinstance(error, NotFound):
            listener.device_id = None
        if isinstance(error, RateLimited):
            await self._rate_limited(error)
        listener.belief = belief_after(view, action, host, None, self._config.sync)
        listener.retry_at = verdict.retry_at
        if verdict.transient:
            listener.failures += 1
        if verdict.status is not None:
            await self._set_status(listener, verdict.status, verdict.detail, tell=verdict.tell_user)

    async def _find_device(self, uid: int) -> str | None:
        try:
            async with asyncio.timeout(self._config.call_timeout_s):
                self.calls["devices"] += 1
                return pick_device(await self._client.devices(uid))
        except Exception as error:
            log.info("guild %s: listing devices of %s failed: %r", self.guild_id, uid, error)
            return None

    # -- state, storage, Discord -----------------------------------------------------------

    async def _set_status(
        self, listener: _Listener, status: ListenerStatus, detail: str, *, tell: bool
    ) -> None:
        uid = listener.state.user_id
        if self._listeners.get(uid) is not listener:
            return  # they left while the command was out
        listener.state = replace(
            listener.state,
            status=status,
            detail=detail,
            updated_at=self._clock(),
            device_id=listener.device_id,
        )
        self._status_dirty = True
        if status is ListenerStatus.ATTACHED:
            listener.told.clear()
        try:
            # Not put_listener: they may have left since this round read the session, and a
            # late status write must not add them back (they would be commanded again).
            present = await self._sessions.update_listener(self.guild_id, listener.state)
        except Exception:
            log.exception("guild %s: storing listener %s failed", self.guild_id, uid)
        else:
            if not present:
                self._listeners.pop(uid, None)
                return
        if tell and status not in listener.told:
            listener.told.add(status)
            try:
                await self._events.notify_user(self.guild_id, uid, detail)
            except Exception:
                log.exception("guild %s: telling %s failed", self.guild_id, uid)

    async def _persist(self, host: PlayerState, *, force: bool) -> None:
        now = self._clock()
        if not force and now - self._persisted_at < self._config.persist_interval_s:
            return
        try:
            await self._sessions.update_session(
                self.guild_id,
                {"snapshot": host.to_snapshot(), "host_active_at": self._host_active_at},
            )
            self._persisted_at = now
        except Exception:
            log.exception("guild %s: storing the host snapshot failed", self.guild_id)

    async def _flush_status(self, host_id: int) -> None:
        now = self._clock()
        if not self._status_dirty or now - self._status_at < self._config.status_interval_s:
            return
        self._status_dirty = False
        self._status_at = now
        host = self._host
        status = SessionStatus(
            guild_id=self.guild_id,
            host_user_id=host_id,
            track=self._track,
            is_playing=bool(host and host.is_playing),
            listeners=tuple(lst.state for lst in self._listeners.values()),
        )
        try:
            await self._events.status_changed(status)
        except Exception:
            log.exception("guild %s: updating the status message failed", self.guild_id)

    async def _end(self, reason: str) -> None:
        self.ended = reason
        log.info("guild %s: session ended (%s)", self.guild_id, reason)
        # The bot ends it first (SessionService.end: deleted, every hook told, the message
        # edited); deleting here as well covers a bot that could not.
        try:
            await self._events.session_ended(self.guild_id, reason)
        except Exception:
            log.exception("guild %s: reporting the end failed", self.guild_id)
        try:
            await self._sessions.delete_session(self.guild_id)
        except Exception:
            log.exception("guild %s: deleting the session failed", self.guild_id)

    # -- lease -----------------------------------------------------------------------------

    @property
    def _lease_name(self) -> str:
        return f"sync:{self.guild_id}"

    async def _hold_lease(self) -> bool:
        if self._leases is None:
            return True
        now = self._clock()
        ttl = self._config.lease_ttl_s
        if self._lease_held and now - self._lease_renewed < ttl / 3:
            return True
        try:
            if self._lease_held:
                held = await self._leases.renew_lease(self._lease_name, self._holder, ttl)
            else:
                held = await self._leases.acquire_lease(self._lease_name, self._holder, ttl)
        except Exception:
            log.exception("guild %s: lease check failed", self.guild_id)
            held = False
        if held and not self._lease_held:
            # Another process may have commanded everyone meanwhile: start from scratch.
            self._host_id = None
            for listener in self._listeners.values():
                listener.forget()
        elif self._lease_held and not held:
            log.warning("guild %s: lost the sync lease", self.guild_id)
        self._lease_held = held
        if held:
            self._lease_renewed = now
        return held


class SyncEngines:
    """Every session's engine in this process, one per guild.

    The composition root builds it with a factory (client, storage, events, config bound) and
    calls `resume_all()` at start-up, and again every few seconds when several processes share
    Redis storage so that a guild whose process died is taken over once its lease runs out.
    """

    def __init__(self, factory: Callable[[int], SyncEngine]) -> None:
        self._factory = factory
        self._engines: dict[int, SyncEngine] = {}

    def get(self, guild_id: int) -> SyncEngine | None:
        engine = self._engines.get(guild_id)
        return engine if engine is not None and engine.running else None

    async def start(self, guild_id: int) -> SyncEngine:
        """Run the loop for a stored session (idempotent)."""
        engine = self.get(guild_id)
        if engine is not None:
            return engine
        # No await between the check above and the new engine running: a session hook and
        # the rescan starting the same guild meanwhile would each run a loop (one holder, so
        # the lease would not stop the second). The stale one is closed once replaced.
        stale = self._engines.pop(guild_id, None)
        engine = self._engines[guild_id] = self._factory(guild_id)
        await engine.start()
        if stale is not None:
            await stale.aclose()
        return engine

    def wake(self, guild_id: int) -> None:
        """A join, leave, resync or host change was stored: act on it now."""
        if (engine := self.get(guild_id)) is not None:
            engine.wake()

    async def stop(self, guild_id: int) -> None:
        engine = self._engines.pop(guild_id, None)
        if engine is not None:
            await engine.aclose()

    async def resume_all(self, sessions: SessionStore) -> int:
        """Start loops for stored sessions that have none here; returns how many started."""
        started = 0
        for session in await sessions.list_sessions():
            if self.get(session.guild_id) is None:
                await self.start(session.guild_id)
                started += 1
        return started

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        await asyncio.gather(*(engine.aclose() for engine in engines))

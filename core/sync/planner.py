"""The pure sync decision: what to send each listener, given the host's state.

The planner *reconciles* rather than replays host events: for every listener it compares the
host's current state with what that listener's player is doing — a fresh observation when the
engine read it this round, else our belief (what our last accepted command left it doing) —
and returns the one command that closes the gap. A command that was lost, timed out or rate
limited therefore leaves the belief unchanged and is simply planned again next round, and a
restarted process (beliefs unknown) brings everyone back in line on its first round.

Listener autonomy: when an observation contradicts our belief in a way no command of ours
explains (paused, resumed, or a different track, and not because their copy of the track just
ended), the listener is marked DETACHED and left alone until `/gamenight resync`.

How the engine uses it, each round (see core/sync/engine.py):
 1. read the host -> `PlayerState.observed(...)`; `changes.detect(previous, host)` for reasons;
 2. optionally read some listeners (schedule.pick_drift_checks) -> `ListenerView.observed`;
 3. `plan(host, views, now, config)`; `Mark` -> store the status; commands -> fan out;
 4. every listener's new belief is `belief_after(view, action, host, landed_at)` (landed_at
    None when the command failed); a failure goes through `failures.classify(...)` for the
    status and retry time it implies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from core.sync.clock import Latency, landing_position
from core.sync.state import PlayerState
from storage.records import ListenerStatus

# -- Actions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    """Start `track_uri` at `position_ms` (PUT /me/player/play with uris and position)."""

    track_uri: str
    position_ms: int
    device_id: str | None = None


@dataclass(frozen=True)
class Resume:
    """The listener is paused on the host's track: play it again at `position_ms`.

    Sent as a play command *with* the track uri, so the position is set in the same call and
    the result is right even if the listener's paused position was stale.
    """

    track_uri: str
    position_ms: int
    device_id: str | None = None


@dataclass(frozen=True)
class Pause:
    device_id: str | None = None


@dataclass(frozen=True)
class Seek:
    position_ms: int
    device_id: str | None = None


@dataclass(frozen=True)
class Nothing:
    reason: str = ""


@dataclass(frozen=True)
class Mark:
    """No command: the listener's status changes (e.g. DETACHED because they wandered off)."""

    status: ListenerStatus
    detail: str


Command = Play | Resume | Pause | Seek
Action = Command | Nothing | Mark

IDLE = Nothing()
READ_FIRST = Nothing("read first")  # unknown: their player is read before it is commanded
SETTLING = Nothing("settling")  # a command of ours may still be landing: look again later

# -- Inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncConfig:
    seek_tolerance_ms: int = 1000  # host vs belief gap that warrants a seek
    drift_threshold_ms: int = 1500  # host vs observed gap that warrants a seek
    settle_s: float = 2.0  # an observation this soon after our command may predate its effect
    end_grace_ms: int = 3000  # near a track's end a listener moving on by itself is not wandering
    # A started device plays audio this long after the command lands (Spotify: "audio starts
    # after a device-dependent delay", REALITY.md): plays and seeks aim this far ahead, or every
    # listener trails the host by it. 150 ms is the fake's default start-up delay
    # (tests/fakes/spotify_lag.py); real devices' delays were not measured (see BENCHMARKS).
    start_lead_ms: int = 150


# Statuses the planner leaves alone: the user must act (relink, Premium) or chose to leave.
PASSIVE = frozenset(
    {ListenerStatus.DETACHED, ListenerStatus.NEEDS_RELINK, ListenerStatus.PREMIUM_REQUIRED}
)


@dataclass(frozen=True)
class ListenerView:
    """Everything the planner knows about one listener."""

    user_id: int
    status: ListenerStatus = ListenerStatus.ATTACHED
    belief: PlayerState | None = None  # after our last accepted command; None: unknown
    observed: PlayerState | None = None  # a read of their player made this round, if any
    latency: Latency = field(default_factory=Latency)
    device_id: str | None = None  # a device picked for this very command (NoActiveDevice)
    retry_at: float = 0.0  # backing off after errors: no command before this
    commanded_at: float = 0.0  # when our last command to them was sent (0: never)

    @property
    def trusted_belief(self) -> PlayerState | None:
        """The belief, unless their device went away since (NO_DEVICE): whatever we left it
        doing is gone, and a reopened Spotify must be read, not assumed in sync."""
        return None if self.status is ListenerStatus.NO_DEVICE else self.belief


# -- Planning -----------------------------------------------------------------------------------


def plan(
    host: PlayerState,
    listeners: Mapping[int, ListenerView],
    now: float,
    config: SyncConfig = SyncConfig(),
) -> dict[int, Action]:
    """One action per listener; `now` is when the engine will send the commands."""
    return {uid: plan_listener(host, view, now, config) for uid, view in listeners.items()}


def plan_listener(
    host: PlayerState, view: ListenerView, now: float, config: SyncConfig = SyncConfig()
) -> Action:
    if view.status in PASSIVE:
        return Nothing(f"status {view.status}")
    if now < view.retry_at:
        return Nothing("backing off")

    if (verdict := _verdict(view, config)) is not None:
        return verdict
    state, from_observation = _basis(view, config)
    if state is None:
        # Never command someone we know nothing about (a join, a restart, a regained lease,
        # a reopened Spotify): a blind play restarts a listener who was in sync all along.
        return SETTLING if view.observed is not None else READ_FIRST
    tolerance = config.drift_threshold_ms if from_observation else config.seek_tolerance_ms
    return _reconcile(host, state, view, now, tolerance)


def wandered(belief: PlayerState | None, observed: PlayerState, config: SyncConfig) -> Mark | None:
    """DETACHED when the observation contradicts what our last command left the player doing."""
    if belief is None:
        return None  # nothing commanded since we (re)started: nothing to contradict
    if _near_end(belief, observed.at, config):
        return None  # their copy ended first; autoplay or a stop is not the listener's doing
    if not observed.has_track:
        if belief.is_playing:
            return Mark(ListenerStatus.NO_DEVICE, "Spotify stopped playing — open Spotify")
        return None  # a paused device going inactive is Spotify's doing
    if belief.is_playing and not observed.is_playing:
        return Mark(ListenerStatus.DETACHED, "paused on their own")
    if observed.is_playing and not belief.is_playing:
        return Mark(ListenerStatus.DETACHED, "started playing on their own")
    if belief.has_track and observed.track_id != belief.track_id:
        return Mark(ListenerStatus.DETACHED, "playing something else")
    return None


def needs_read(view: ListenerView, now: float, config: SyncConfig = SyncConfig()) -> bool:
    """Whether the engine must read this listener's player before planning for them: nothing
    is known (or trusted) and no command of ours is still settling."""
    return (
        view.status not in PASSIVE
        and now >= view.retry_at
        and view.trusted_belief is None
        and now - view.commanded_at >= config.settle_s
    )


def read_due_at(view: ListenerView, config: SyncConfig = SyncConfig()) -> float | None:
    """When `needs_read` will hold for this listener (None: it will not by time alone): a
    round must come back then, or a listener reset within a settle window waits for the next
    host change (with presence, the next read of the host may be minutes away)."""
    if view.status in PASSIVE or view.trusted_belief is not None:
        return None
    return max(view.retry_at, view.commanded_at + config.settle_s)


def _settled(view: ListenerView, observed: PlayerState, config: SyncConfig) -> bool:
    # Spotify's read side lags its command side (a read right after a command can show the old
    # state, and a 202 means the device is still waking): within the settle window after our
    # last command the belief wins over a contradicting read.
    since = view.commanded_at
    if view.trusted_belief is not None:
        since = max(since, view.trusted_belief.at)
    return observed.at - since >= config.settle_s


def _verdict(view: ListenerView, config: SyncConfig) -> Mark | None:
    if view.observed is None or not _settled(view, view.observed, config):
        return None
    return wandered(view.trusted_belief, view.observed, config)


def _basis(view: ListenerView, config: SyncConfig) -> tuple[PlayerState | None, bool]:
    """The listener state decisions start from, and whether it is an observation."""
    if view.observed is not None and _settled(view, view.observed, config):
        return view.observed, True
    return view.trusted_belief, False


def _near_end(belief: PlayerState, at: float, config: SyncConfig) -> bool:
    remaining = belief.remaining_at(at)
    return belief.is_playing and remaining is not None and remaining * 1000 <= config.end_grace_ms


def _reconcile(
    host: PlayerState,
    state: PlayerState | None,
    view: ListenerView,
    now: float,
    tolerance_ms: int,
) -> Action:
    device = view.device_id
    if state is not None and state.device_id is not None and state.device_id != device:
        device = None  # they moved to another device: follow them there, never pull them back
    if state is None:
        return READ_FIRST
    if not (host.is_playing and host.track_uri):
        return Pause(device) if state.is_playing else IDLE

    target = landing_position(host, now, view.latency)
    if state is None or state.track_id != host.track_id:
        return Play(host.track_uri, target, device)
    if not state.is_playing:
        return Resume(host.track_uri, target, device)
    if abs(state.position_at(now) - host.position_at(now)) > tolerance_ms:
        return Seek(target, device)
    return IDLE


def belief_after(
    view: ListenerView,
    action: Action,
    host: PlayerState,
    landed_at: float | None,
    config: SyncConfig = SyncConfig(),
) -> PlayerState | None:
    """The new belief about a listener's player once this round's `action` is done.

    `landed_at` is when an accepted command took effect: its send time plus half the measured
    round trip of that very call, so the belief carries the real landing error and the next
    round corrects it if it is large. `None` means the command failed: the belief stays what it
    was (refreshed by this round's observation, if one was used), so the command is planned
    again once the listener's back-off allows.
    """
    basis, _ = _basis(view, config)
    if isinstance(action, Mark):
        return view.belief
    if action == SETTLING:
        return view.belief
    if isinstance(action, Nothing) or landed_at is None:
        return basis
    match action:
        case Play() | Resume():
            return PlayerState(
                track_id=host.track_id,
                position_ms=action.position_ms,
                is_playing=True,
                at=landed_at,
                duration_ms=host.duration_ms,
                device_id=action.device_id,
            )
        case Seek():
            if basis is None:
                return None
            return replace(basis.moved_to(landed_at), position_ms=action.position_ms)
        case Pause():
            if basis is None:
                return PlayerState.idle(landed_at)
            return replace(basis.moved_to(landed_at), is_playing=False)

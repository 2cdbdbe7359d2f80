"""What changed on the host's player between two observations.

The planner does not need this to decide commands (it reconciles each listener with the host's
current state, which also heals lost commands); change detection names *why* the listeners
were commanded, for the status message, the idle timeout, logs, metrics and the benchmarks.

A seek is a position jump that elapsed time does not explain: with the previous observation
extrapolated to the current one, `|observed - expected| > tolerance + uncertainty`, where the
uncertainty is half the current read's round trip (its `at` may be off by that much).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.sync.state import PlayerState

DEFAULT_SEEK_TOLERANCE_MS = 1000
NATURAL_END_SLACK_MS = 2000  # a track change this close to the predicted end is the track ending


class Change(StrEnum):
    STARTED = "started"  # a track appeared where there was none (or nothing was known)
    TRACK = "track"  # a different track
    PAUSE = "pause"
    RESUME = "resume"
    SEEK = "seek"  # same track, position jumped beyond what elapsed time explains
    STOPPED = "stopped"  # the track went away (204, or an item we cannot mirror)
    DEVICE = "device"  # playback moved to another of the host's devices


@dataclass(frozen=True)
class HostChange:
    kinds: frozenset[Change] = frozenset()
    jump_ms: int = 0  # observed minus expected position (SEEK only); negative = backwards
    natural_end: bool = False  # TRACK caused by the previous track playing to its end

    def __contains__(self, kind: object) -> bool:
        return kind in self.kinds

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def describe(self) -> str:
        return ",".join(sorted(self.kinds)) or "none"


NO_CHANGE = HostChange()


def detect(
    previous: PlayerState | None,
    current: PlayerState,
    tolerance_ms: int = DEFAULT_SEEK_TOLERANCE_MS,
) -> HostChange:
    """Classify the step from `previous` (None: nothing known) to `current`."""
    if previous is None or not previous.has_track:
        return HostChange(frozenset({Change.STARTED})) if current.has_track else NO_CHANGE
    if not current.has_track:
        return HostChange(frozenset({Change.STOPPED}))

    kinds: set[Change] = set()
    if (
        previous.device_id is not None
        and current.device_id is not None
        and previous.device_id != current.device_id
    ):
        kinds.add(Change.DEVICE)

    if previous.is_playing and not current.is_playing:
        kinds.add(Change.PAUSE)
    elif current.is_playing and not previous.is_playing:
        kinds.add(Change.RESUME)

    if current.track_id != previous.track_id:
        kinds.add(Change.TRACK)
        remaining = previous.remaining_at(current.at)
        natural = (
            previous.is_playing
            and remaining is not None
            and remaining * 1000 <= NATURAL_END_SLACK_MS + current.uncertainty_ms
        )
        return HostChange(frozenset(kinds), natural_end=natural)

    jump = current.position_ms - _expected_position(previous, current)
    if abs(jump) > tolerance_ms + current.uncertainty_ms:
        kinds.add(Change.SEEK)
        return HostChange(frozenset(kinds), jump_ms=jump)
    return HostChange(frozenset(kinds))


def _expected_position(previous: PlayerState, current: PlayerState) -> int:
    """Where `previous` would be at `current.at` if nobody touched the player.

    Across a pause or resume we do not know when in the interval the state flipped, so the
    expectation takes the interpretation closest to what was observed: any flip instant in
    between gives a position between "never moved" and "moved the whole time".
    """
    still = previous.position_ms
    moved = previous.moved_to(current.at).position_ms if previous.is_playing else still
    if previous.is_playing == current.is_playing:
        return moved
    full = previous.position_ms + round((current.at - previous.at) * 1000)
    if previous.duration_ms:
        full = min(full, previous.duration_ms)
    low, high = min(still, full), max(still, full)
    return min(max(current.position_ms, low), high)

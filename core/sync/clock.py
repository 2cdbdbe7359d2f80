"""Timing: each listener's one-way command latency, and where the host will be when a command lands.

A play command carries a position; the listener's player starts there when the command reaches
Spotify, one one-way trip after we send it. So the position we send is the host's position
extrapolated to `send time + that listener's one-way latency`, and the latency is learnt per
listener from the round trips of their own calls (RTT/2).

The estimate is an EWMA in the style of TCP's SRTT/RTTVAR (RFC 6298), made robust: a sample
far above the current estimate (a GC pause, one retransmit) is clipped to `mean + 4 * deviation`
before it is averaged in, so one outlier moves the estimate a little, while a lasting change
(the listener moved to a slow network) still wins after a few samples because the deviation
grows with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from core.sync.state import PlayerState

DEFAULT_ONE_WAY_S = 0.1  # before the first sample; a typical one-way trip to Spotify
MAX_ONE_WAY_S = 2.0  # beyond this a "latency" is a timeout, not a path to plan around


@dataclass(frozen=True)
class Latency:
    """A smoothed one-way latency estimate (seconds). Immutable: `observe` returns a new one."""

    mean_s: float = DEFAULT_ONE_WAY_S
    deviation_s: float = DEFAULT_ONE_WAY_S / 2
    samples: int = 0

    GAIN = 0.125  # RFC 6298 alpha
    DEVIATION_GAIN = 0.25  # RFC 6298 beta

    def observe(self, rtt_s: float) -> Latency:
        """Fold in the round trip of one completed call (its one-way latency is half)."""
        sample = min(max(0.0, rtt_s / 2), MAX_ONE_WAY_S)
        if self.samples == 0:
            return Latency(mean_s=sample, deviation_s=sample / 2, samples=1)
        ceiling = self.mean_s + 4 * max(self.deviation_s, 0.005)
        clipped = min(sample, ceiling)
        error = clipped - self.mean_s
        return Latency(
            mean_s=self.mean_s + self.GAIN * error,
            deviation_s=self.deviation_s + self.DEVIATION_GAIN * (abs(error) - self.deviation_s),
            samples=self.samples + 1,
        )

    @property
    def one_way_s(self) -> float:
        return self.mean_s


def extrapolate(host: PlayerState, at: float) -> int:
    """The host's position (ms) at local time `at`, clamped to [0, duration]."""
    return host.position_at(at)


def landing_position(host: PlayerState, sent_at: float, latency: Latency, lead_ms: int = 0) -> int:
    """The position to put in a command sent at `sent_at`, so it matches the host on arrival;
    while the host plays, `lead_ms` ahead: the listener's audio starts that much after the
    command lands (device start-up), and from there runs in step with the host."""
    if not host.is_playing or lead_ms <= 0:
        return host.position_at(sent_at + latency.one_way_s)
    return host.position_at(sent_at + latency.one_way_s + lead_ms / 1000)


@dataclass(frozen=True)
class Clock:
    """The engine's time: one monotonic clock for every in-process interval (timeouts, back-offs,
    the drift budget, positions), and the wall clock only where a time is stored or shown.

    A wall-clock step (NTP, a suspended VM) would otherwise freeze or rush every interval by the
    size of the step. The Spotify client stamps its reads with the same monotonic clock
    (`SpotifyClient.timer`), so an observation's `at` and the engine's `now` agree.
    """

    now: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def to_wall(self, at: float) -> float:
        """A monotonic instant as wall time, to store (a host snapshot's `at`)."""
        return self.wall() - (self.now() - at)

    def from_wall(self, wall_at: float) -> float:
        """A stored wall time as a monotonic instant (a resumed snapshot, `host_active_at`)."""
        return self.now() - (self.wall() - wall_at)

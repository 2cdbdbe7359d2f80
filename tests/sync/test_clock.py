"""Latency estimation and host-position extrapolation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.sync.clock import DEFAULT_ONE_WAY_S, Latency, extrapolate, landing_position
from core.sync.state import PlayerState

A = "A" * 22


def feed(rtts: list[float]) -> Latency:
    latency = Latency()
    for rtt in rtts:
        latency = latency.observe(rtt)
    return latency


@pytest.mark.parametrize(
    ("rtts", "low", "high"),
    [
        ([], DEFAULT_ONE_WAY_S, DEFAULT_ONE_WAY_S),
        ([0.16], 0.08, 0.08),  # the first sample is taken as is: RTT/2
        ([0.16] * 20, 0.0799, 0.0801),
        ([0.08, 0.24] * 20, 0.075, 0.085),  # jitter averages out around the mean
        ([0.16] * 20 + [3.0], 0.08, 0.095),  # one outlier (GC pause) barely moves it
        ([0.16] * 20 + [3.0] * 3, 0.08, 0.2),  # three are still mostly clipped
        ([0.16] * 20 + [0.6] * 30, 0.28, 0.3),  # a lasting change wins
        ([0.16] * 20 + [0.02] * 30, 0.01, 0.02),  # also downwards
        ([10.0], 2.0, 2.0),  # a timeout-sized sample is capped
        ([-1.0], 0.0, 0.0),  # a clock step backwards cannot give a negative latency
    ],
)
def test_latency_estimate(rtts: list[float], low: float, high: float) -> None:
    assert low <= feed(rtts).one_way_s <= high


def test_latency_is_immutable() -> None:
    first = Latency()
    first.observe(1.0)
    assert first.one_way_s == DEFAULT_ONE_WAY_S
    assert first.samples == 0


HOST = PlayerState(A, 30_000, True, 100.0, 200_000)


@pytest.mark.parametrize(
    ("host", "at", "expected"),
    [
        (HOST, 100.0, 30_000),
        (HOST, 101.25, 31_250),
        (HOST, 99.0, 29_000),  # before the observation (a command sent from an older plan)
        (HOST, 400.0, 200_000),  # clamped at the end of the track
        (PlayerState(A, 500, True, 100.0, 200_000), 99.0, 0),  # clamped at zero
        (PlayerState(A, 30_000, False, 100.0, 200_000), 160.0, 30_000),  # paused: still
        (PlayerState(A, 30_000, True, 100.0, 0), 1_000.0, 930_000),  # unknown duration
        (PlayerState.idle(100.0), 200.0, 0),
    ],
)
def test_extrapolate(host: PlayerState, at: float, expected: int) -> None:
    assert extrapolate(host, at) == expected


def test_landing_position_adds_the_listeners_one_way_latency() -> None:
    slow = feed([0.5] * 5)  # 250 ms one way
    assert landing_position(HOST, 101.0, slow) == 31_250
    assert landing_position(HOST, 101.0, feed([0.02])) == 31_010


def test_landing_position_aims_past_the_start_up_delay_only_while_the_host_plays() -> None:
    fast = feed([0.02])  # 10 ms one way
    assert landing_position(HOST, 101.0, fast, lead_ms=150) == 31_160
    paused = replace(HOST, is_playing=False)
    assert landing_position(paused, 101.0, fast, lead_ms=150) == paused.position_ms

"""core.voice.decide and core.host_presence.snapshot_of: what to play for a host's presence."""

from __future__ import annotations

import pytest

from core.host_presence import snapshot_of
from core.presence import Listening, Presence
from core.voice import (
    HostPlayback,
    Play,
    Playing,
    Quiet,
    Stay,
    decide,
    playback_from_snapshot,
    track_from_presence,
)
from storage.records import HostSnapshot

SONG = Listening("4uLU6hMCjMI75M1A2tKUQC", "Song", ("Artist",), "Album", 200_000, 10_000)
OTHER = Listening("7tFiyTwD0nx5a1eklYtX2J", "Other", ("Band",), "", 180_000, 0)


def host(listening: Listening, position_ms: int, at: float = 100.0) -> HostPlayback:
    return HostPlayback(listening, position_ms, at)


@pytest.mark.parametrize(
    ("playing", "hosting", "now", "skipped", "expected"),
    [
        (None, None, 100.0, None, Stay),  # nothing playing anywhere
        (Playing(SONG.track_id, 10_000, 100.0), None, 101.0, None, Quiet),  # host paused
        (None, host(SONG, 10_000), 100.0, None, Play),  # start
        (Playing(SONG.track_id, 10_000, 100.0), host(OTHER, 0), 101.0, None, Play),  # skip
        (Playing(SONG.track_id, 10_000, 100.0), host(SONG, 10_000), 101.0, None, Stay),  # same
        (Playing(SONG.track_id, 10_000, 100.0), host(SONG, 10_600), 101.0, None, Stay),  # jitter
        (Playing(SONG.track_id, 10_000, 100.0), host(SONG, 40_000), 101.0, None, Play),  # seek
        (Playing(SONG.track_id, 10_000, 100.0), host(SONG, 2_000), 101.0, None, Play),  # back
        (None, host(SONG, 10_000), 100.0, SONG.track_id, Stay),  # no audio for it: wait
        (Playing(OTHER.track_id, 0, 90.0), host(SONG, 0), 100.0, SONG.track_id, Quiet),
    ],
)
def test_decide(
    playing: Playing | None,
    hosting: HostPlayback | None,
    now: float,
    skipped: str | None,
    expected: type,
) -> None:
    assert type(decide(playing, hosting, now, skipped=skipped)) is expected


def test_a_play_carries_the_presence_metadata_and_position() -> None:
    action = decide(None, host(SONG, 10_000, at=100.0), 100.0)
    assert isinstance(action, Play)
    assert action.track == track_from_presence(SONG)
    assert (action.track.name, action.track.artists, action.track.duration_ms) == (
        "Song",
        ("Artist",),
        200_000,
    )
    assert action.host.position_at(102.5) == 12_500
    assert host(SONG, 199_000).position_at(105.0) == 200_000  # never past the end


def test_snapshot_of_a_presence_and_of_a_pause() -> None:
    playing = snapshot_of(Presence(1, SONG, received_at=0.0), None, now=1_000.0)
    assert (playing.track_id, playing.is_playing, playing.duration_ms) == (
        SONG.track_id,
        True,
        200_000,
    )
    previous = HostSnapshot(SONG.track_id, 10_000, True, 1_000.0, 200_000)
    paused = snapshot_of(Presence(1, None, received_at=0.0), previous, now=1_002.0)
    assert (paused.track_id, paused.position_ms, paused.is_playing) == (
        SONG.track_id,
        12_000,
        False,
    )
    assert snapshot_of(Presence(1, None, 0.0), None, now=5.0).track_id is None


def test_an_engine_snapshot_becomes_a_host_playback_on_the_monotonic_clock() -> None:
    track = track_from_presence(SONG)
    snapshot = HostSnapshot(SONG.track_id, 30_000, True, at=1_000.0, duration_ms=200_000)
    playback = playback_from_snapshot(snapshot, track, wall_now=1_002.0, mono_now=50.0)
    assert playback is not None and playback.position_at(50.0) == 32_000
    paused = HostSnapshot(SONG.track_id, 30_000, False, at=1_000.0)
    assert playback_from_snapshot(paused, track, 1_002.0, 50.0) is None

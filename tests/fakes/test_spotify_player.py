"""The fake's simulated player: position advances on the clock, tracks roll over, then stop."""

from __future__ import annotations

from tests.fakes.spotify_catalog import FakePlayer, make_catalog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_position_advances_and_rolls_into_the_next_track_then_stops() -> None:
    first, second = make_catalog(2)
    clock = Clock()
    player = FakePlayer({t.id: t for t in (first, second)}, clock)
    player.load([first.id, second.id], position_ms=first.duration_ms - 2000)

    clock.now += 1.5
    assert player.now().position_ms == first.duration_ms - 500
    clock.now += 1.0  # 500 ms past the end of the first track
    snap = player.now()
    assert (snap.track_id, snap.position_ms, snap.is_playing) == (second.id, 500, True)

    clock.now += second.duration_ms / 1000 + 60  # far past the end of the queue
    snap = player.now()
    assert (snap.track_id, snap.position_ms, snap.is_playing) == (second.id, 0, False)


def test_pause_freezes_and_seek_past_the_end_skips() -> None:
    first, second = make_catalog(2)
    clock = Clock()
    player = FakePlayer({t.id: t for t in (first, second)}, clock)
    player.load([first.id, second.id], position_ms=10_000)
    clock.now += 2
    player.pause()
    clock.now += 100
    assert (player.now().position_ms, player.now().is_playing) == (12_000, False)
    player.resume()
    player.seek(first.duration_ms + 3000)
    assert (player.now().track_id, player.now().position_ms) == (second.id, 3000)


def test_catalog_is_deterministic_with_spotify_shaped_ids() -> None:
    tracks = make_catalog(5, seed=3)
    assert [t.id for t in tracks] == [t.id for t in make_catalog(5, seed=3)]
    assert all(len(t.id) == 22 and t.id.isalnum() and t.isrc for t in tracks)

"""The fake Spotify's world: tracks, devices, playlists, accounts and their simulated players.

Pure state with no I/O, so it can be read and driven directly by tests (see tests/fakes/spotify.py
for the server and the documented control API). Times are seconds from the fake's clock.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

BASE62 = string.digits + string.ascii_letters


def make_id(rng: random.Random, length: int = 22) -> str:
    """A Spotify-style id: 22 characters of base62."""
    return "".join(rng.choice(BASE62) for _ in range(length))


@dataclass(frozen=True)
class FakeTrack:
    id: str
    name: str
    artists: tuple[str, ...]
    album: str
    duration_ms: int
    isrc: str
    album_id: str
    artist_ids: tuple[str, ...]

    @property
    def uri(self) -> str:
        return f"spotify:track:{self.id}"


_WORDS = (
    "Midnight", "Neon", "River", "Paper", "Echo", "Velvet", "Static", "Golden", "Hollow",
    "Signal", "Marble", "Sugar", "Glass", "Ember", "Orbit", "Lantern", "Copper", "Winter",
)  # fmt: skip
_ARTISTS = ("The Fakes", "Loopback", "Null Device", "Port Zero", "Mock Orchestra", "Stub & Co")


def make_catalog(count: int = 40, seed: int = 7) -> list[FakeTrack]:
    """Deterministic tracks (same seed, same ids) with durations between 2:30 and 5:00."""
    rng = random.Random(seed)
    tracks = []
    for n in range(count):
        artists = tuple(rng.sample(_ARTISTS, k=1 + (n % 4 == 0)))
        tracks.append(
            FakeTrack(
                id=make_id(rng),
                name=f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}",
                artists=artists,
                album=f"{rng.choice(_WORDS)} Sessions",
                duration_ms=rng.randrange(150_000, 300_000),
                isrc=f"QZFAK{26:02d}{n:05d}",
                album_id=make_id(rng),
                artist_ids=tuple(make_id(rng) for _ in artists),
            )
        )
    return tracks


@dataclass
class FakeDevice:
    id: str
    name: str
    type: str = "Computer"
    is_restricted: bool = False
    volume_percent: int = 60


@dataclass
class FakePlaylist:
    id: str
    name: str
    owner_id: str
    track_ids: list[str]
    public: bool = False
    # Development-mode rules (tests/fakes/spotify_devmode.py): who may read the items, and
    # who sees it under /me/playlists (owners, collaborators and followers).
    collaborative: bool = False
    collaborators: set[str] = field(default_factory=set)
    followers: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PlayerSnapshot:
    """What an account's player is doing at `at` (the fake's clock)."""

    track_id: str | None
    position_ms: int
    is_playing: bool
    device_id: str | None
    at: float


class FakePlayer:
    """One account's playback: a queue of tracks, a position that advances while playing.

    Position is computed from an anchor (position at a clock time), so reading it is exact at
    any moment; at the end of a track it moves to the next queued track, and stops (paused at
    0 on the last track) when the queue runs out.
    """

    def __init__(self, catalog: dict[str, FakeTrack], clock: Callable[[], float]) -> None:
        self._catalog = catalog
        self._clock = clock
        self.queue: list[str] = []
        self.index = 0
        self.is_playing = False
        self.device_id: str | None = None
        self.context_uri: str | None = None
        self._anchor_ms = 0.0
        self._anchor_at = clock()
        self.changed_at = clock()  # what Spotify reports as `timestamp`
        # Seconds the next start (play, resume, seek while playing) waits before audio and
        # position move: set per command by tests/fakes/spotify_lag.py.
        self.start_delay = 0.0
        # Called after every change (commands, and a track ending when that is noticed): the
        # fake Discord's presence bridge (tests/fakes/discord_presence.py) listens here.
        self.on_change: list[Callable[[], None]] = []

    @property
    def track(self) -> FakeTrack | None:
        self._settle()
        return self._catalog[self.queue[self.index]] if self.queue else None

    def now(self) -> PlayerSnapshot:
        now = self._settle()
        track = self._catalog[self.queue[self.index]] if self.queue else None
        return PlayerSnapshot(
            track_id=track.id if track else None,
            position_ms=int(self._position_at(now)) if track else 0,
            is_playing=self.is_playing,
            device_id=self.device_id,
            at=now,
        )

    def load(self, track_ids: list[str], index: int = 0, position_ms: int = 0) -> None:
        """Replace the queue and start playing `track_ids[index]` at `position_ms`."""
        self.queue = list(track_ids)
        self.index = index
        self._set(position_ms, playing=True)
        self._settle()

    def resume(self) -> None:
        self._set(self._position_at(self._settle()), playing=True)

    def pause(self) -> None:
        self._set(self._position_at(self._settle()), playing=False)

    def seek(self, position_ms: int) -> None:
        self._settle()
        self._set(position_ms, playing=self.is_playing)
        self._settle()

    def next(self) -> None:
        self._settle()
        if self.index + 1 < len(self.queue):
            self.index += 1
            self._set(0, playing=True)
        else:
            self._set(0, playing=False)

    def _position_at(self, now: float) -> float:
        if not self.is_playing:
            return self._anchor_ms
        # Before the anchor (a start-up delay) the position stands still.
        return self._anchor_ms + max(0.0, now - self._anchor_at) * 1000

    def _set(self, position_ms: float, playing: bool) -> None:
        now = self._clock()
        delay, self.start_delay = (self.start_delay if playing else 0.0), 0.0
        self._anchor_ms = float(max(0, position_ms))
        self._anchor_at = now + delay
        self.is_playing = playing
        self.changed_at = now
        self._changed()

    def _changed(self) -> None:
        for callback in list(self.on_change):
            callback()

    def _settle(self) -> float:
        """Move across track boundaries that passed since the anchor; return the time used."""
        now = self._clock()
        while self.queue:
            duration = self._catalog[self.queue[self.index]].duration_ms
            position = self._position_at(now)
            if position < duration:
                break
            # The track ended at this clock time; the next one starts there, not at `now`.
            ended_at = self._anchor_at + (duration - self._anchor_ms) / 1000
            if self.index + 1 < len(self.queue):
                self.index += 1
                self._anchor_ms, self._anchor_at = 0.0, ended_at
                self.changed_at = ended_at
                self._changed()
            else:
                self._anchor_ms, self._anchor_at = 0.0, ended_at
                self.is_playing = False
                self.changed_at = ended_at
                self._changed()
                break
        return now


@dataclass
class FakeAccount:
    id: str
    display_name: str
    player: FakePlayer
    premium: bool = True
    devices: list[FakeDevice] = field(default_factory=list)

    def device(self, device_id: str) -> FakeDevice | None:
        return next((d for d in self.devices if d.id == device_id), None)

    @property
    def active_device(self) -> FakeDevice | None:
        return self.device(self.player.device_id) if self.player.device_id else None

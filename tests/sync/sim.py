"""Typed in-process stand-ins for the engine's collaborators, driven by a manual clock.

Engine tests step rounds by hand against these so every position is exact. They implement
the same Protocols as the real things (`PlayerClient`, `SessionStore`, `LeaseStore`,
`SyncEvents`); the end-to-end test in test_engine_spotify.py runs the engine against the real
client, real spotipy and the fake Spotify server instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from core.errors import NoActiveDevice
from core.sync.ports import SessionStatus
from core.tracks import TrackInfo
from storage.base import SessionFields
from storage.records import LinkStatus, ListenerState, Session, SpotifyLink


class ManualClock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def track(letter: str, duration_ms: int = 200_000) -> TrackInfo:
    return TrackInfo(
        id=letter * 22, name=f"Song {letter}", artists=("Band",), duration_ms=duration_ms
    )


@dataclass(frozen=True)
class SimDevice:
    id: str | None
    name: str = "Phone"
    type: str = "Smartphone"
    is_active: bool = True
    is_restricted: bool = False


@dataclass(frozen=True)
class SimPlayback:
    track: TrackInfo | None
    progress_ms: int
    is_playing: bool
    device: SimDevice | None
    requested_at: float
    answered_at: float


@dataclass
class SimPlayer:
    track: TrackInfo | None = None
    position_ms: int = 0
    is_playing: bool = False
    at: float = 0.0
    device: SimDevice | None = field(default_factory=lambda: SimDevice("phone"))
    devices: list[SimDevice] = field(default_factory=lambda: [SimDevice("phone")])

    def position(self, now: float) -> int:
        pos = self.position_ms + (round((now - self.at) * 1000) if self.is_playing else 0)
        return min(pos, self.track.duration_ms) if self.track else 0


class SimSpotify:
    """Players keyed by discord user id; `fail[uid]` queues exceptions for that user's calls;
    `hang` holds a user's calls until released (a listener whose calls never answer)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.players: dict[int, SimPlayer] = {}
        self.fail: dict[int, list[Exception]] = {}
        self.hang: dict[int, asyncio.Event] = {}
        self.log: list[tuple[int, str, tuple[object, ...]]] = []
        self.catalog: dict[str, TrackInfo] = {}

    def player(self, uid: int) -> SimPlayer:
        return self.players.setdefault(uid, SimPlayer())

    def host_plays(self, uid: int, info: TrackInfo, position_ms: int, playing: bool = True) -> None:
        self.catalog[info.id] = info
        p = self.player(uid)
        p.track, p.position_ms, p.is_playing, p.at = info, position_ms, playing, self.clock()

    def commands(self, uid: int) -> list[tuple[str, tuple[object, ...]]]:
        return [(name, args) for who, name, args in self.log if who == uid and name != "playback"]

    async def _call(self, uid: int, name: str, *args: object) -> None:
        self.log.append((uid, name, args))
        if uid in self.hang:
            await self.hang[uid].wait()
        if self.fail.get(uid):
            raise self.fail[uid].pop(0)

    async def playback(self, discord_user_id: int) -> SimPlayback | None:
        await self._call(discord_user_id, "playback")
        p = self.player(discord_user_id)
        if p.track is None or p.device is None:
            return None
        now = self.clock()
        return SimPlayback(p.track, p.position(now), p.is_playing, p.device, now, now)

    async def play(
        self,
        discord_user_id: int,
        track_uri: str | None,
        position_ms: int | None = None,
        device_id: str | None = None,
    ) -> None:
        await self._call(discord_user_id, "play", track_uri, position_ms, device_id)
        p = self._active(discord_user_id, device_id)
        if track_uri is not None:
            p.track = self.catalog[track_uri.rsplit(":", 1)[-1]]
            p.position_ms = position_ms or 0
        else:
            p.position_ms = p.position(self.clock()) if position_ms is None else position_ms
        p.is_playing, p.at = True, self.clock()

    async def pause(self, discord_user_id: int, device_id: str | None = None) -> None:
        await self._call(discord_user_id, "pause", device_id)
        p = self._active(discord_user_id, device_id)
        p.position_ms, p.is_playing, p.at = p.position(self.clock()), False, self.clock()

    async def seek(
        self, discord_user_id: int, position_ms: int, device_id: str | None = None
    ) -> None:
        await self._call(discord_user_id, "seek", position_ms, device_id)
        p = self._active(discord_user_id, device_id)
        p.position_ms, p.at = position_ms, self.clock()

    async def devices(self, discord_user_id: int) -> Sequence[SimDevice]:
        await self._call(discord_user_id, "devices")
        return list(self.player(discord_user_id).devices)

    def _active(self, uid: int, device_id: str | None) -> SimPlayer:
        p = self.player(uid)
        if device_id is not None:
            chosen = [d for d in p.devices if d.id == device_id]
            if not chosen:
                raise NoActiveDevice("Device not found")
            p.device = replace(chosen[0], is_active=True)
        if p.device is None:
            raise NoActiveDevice("No active device found")
        return p


class MemoryStore:
    """LinkStore + SessionStore + LeaseStore in dicts, with a clock for lease expiry."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.sessions: dict[int, Session] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.links: dict[int, SpotifyLink] = {}

    async def put_link(self, link: SpotifyLink) -> None:
        self.links[link.discord_user_id] = link

    async def get_link(self, discord_user_id: int) -> SpotifyLink | None:
        return self.links.get(discord_user_id)

    async def set_link_status(self, discord_user_id: int, status: LinkStatus) -> bool:
        if discord_user_id not in self.links:
            return False
        self.links[discord_user_id] = replace(self.links[discord_user_id], status=status)
        return True

    async def delete_link(self, discord_user_id: int) -> bool:
        return self.links.pop(discord_user_id, None) is not None

    async def create_session(self, session: Session) -> bool:
        if session.guild_id in self.sessions:
            return False
        self.sessions[session.guild_id] = session
        return True

    async def get_session(self, guild_id: int) -> Session | None:
        return self.sessions.get(guild_id)

    async def list_sessions(self) -> list[Session]:
        return list(self.sessions.values())

    async def update_session(self, guild_id: int, fields: SessionFields) -> bool:
        if guild_id not in self.sessions:
            return False
        self.sessions[guild_id] = replace(self.sessions[guild_id], **fields)
        return True

    async def delete_session(self, guild_id: int) -> bool:
        return self.sessions.pop(guild_id, None) is not None

    async def put_listener(self, guild_id: int, listener: ListenerState) -> bool:
        session = self.sessions.get(guild_id)
        if session is None:
            return False
        listeners = {**session.listeners, listener.user_id: listener}
        self.sessions[guild_id] = replace(session, listeners=listeners)
        return True

    async def remove_listener(self, guild_id: int, user_id: int) -> bool:
        session = self.sessions.get(guild_id)
        if session is None or user_id not in session.listeners:
            return False
        listeners = {k: v for k, v in session.listeners.items() if k != user_id}
        self.sessions[guild_id] = replace(session, listeners=listeners)
        return True

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        current = self.leases.get(name)
        if current is not None and current[0] != holder and current[1] > self.clock():
            return False
        self.leases[name] = (holder, self.clock() + ttl)
        return True

    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        current = self.leases.get(name)
        if current is None or current[0] != holder or current[1] <= self.clock():
            return False
        self.leases[name] = (holder, self.clock() + ttl)
        return True

    async def release_lease(self, name: str, holder: str) -> bool:
        if self.leases.get(name, ("", 0.0))[0] != holder:
            return False
        del self.leases[name]
        return True


class RecordedEvents:
    def __init__(self) -> None:
        self.statuses: list[SessionStatus] = []
        self.notices: list[tuple[int, str]] = []
        self.ended: list[str] = []

    async def status_changed(self, status: SessionStatus) -> None:
        self.statuses.append(status)

    async def notify_user(self, guild_id: int, user_id: int, message: str) -> None:
        self.notices.append((user_id, message))

    async def session_ended(self, guild_id: int, reason: str) -> None:
        self.ended.append(reason)

"""Game nights without a Spotify app: the host's Discord presence stands in for the sync engine.

When the bot runs without Spotify app keys, no engine reads the host's player. `HostPresence`
then keeps each session's host snapshot from the host's Spotify presence (track, position,
playing or not), so the listen-along page and the status message follow the host exactly as
they follow the engine's snapshots, and voice follows the board directly. `PresenceTracks`
answers track metadata from presences before asking Spotify: the host's own presence is
server-side data (Discord relays it from Spotify), and it is the only source without an app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from core.presence import Presence, PresenceBoard
from core.tracks import TrackInfo
from core.voice import track_from_presence
from storage.base import SessionFields, SessionStore
from storage.records import HostSnapshot, Session

log = logging.getLogger(__name__)


class TrackLookup(Protocol):
    async def track(self, track_id: str) -> TrackInfo: ...


class PresenceTracks:
    """Track metadata: from a member's presence naming that track, else from `fallback`."""

    def __init__(self, board: PresenceBoard, fallback: TrackLookup | None) -> None:
        self._board = board
        self._fallback = fallback
        self._seen: dict[str, TrackInfo] = {}
        board.subscribe(self._remember)

    def _remember(self, presence: Presence) -> None:
        if presence.listening is not None:
            if len(self._seen) > 1024:
                self._seen.clear()
            self._seen[presence.listening.track_id] = track_from_presence(presence.listening)

    async def track(self, track_id: str) -> TrackInfo:
        known = self._seen.get(track_id)
        if known is not None:
            return known
        if self._fallback is None:
            raise LookupError(f"no presence names track {track_id}")
        return await self._fallback.track(track_id)


def snapshot_of(presence: Presence, previous: HostSnapshot | None, now: float) -> HostSnapshot:
    """The host snapshot a presence means, at wall-clock `now`. A presence without Spotify is
    a pause: the previous track stays, stopped where it was."""
    listening = presence.listening
    if listening is None:
        if previous is None or previous.track_id is None:
            return HostSnapshot(None, 0, False, now)
        position = previous.position_ms
        if previous.is_playing:
            position += int((now - previous.at) * 1000)
            if previous.duration_ms:
                position = min(position, previous.duration_ms)
        return HostSnapshot(previous.track_id, position, False, now, previous.duration_ms)
    position = presence.position_at(time.monotonic()) or 0
    return HostSnapshot(listening.track_id, position, True, now, listening.duration_ms or 0)


class HostPresence:
    """`SessionHooks` + board subscriber: stores each session host's presence as its snapshot."""

    def __init__(
        self,
        board: PresenceBoard,
        sessions: SessionStore,
        on_playback: Callable[[int, HostSnapshot], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._board = board
        self._sessions = sessions
        self._on_playback = on_playback
        self._clock = clock
        self._hosts: dict[int, int] = {}  # guild -> host user id
        self._pending: set[object] = set()
        self._unsubscribe = board.subscribe(self._presence)

    def close(self) -> None:
        self._unsubscribe()

    def _presence(self, presence: Presence) -> None:
        # The board calls synchronously; storage is async: one task per host update.
        for guild_id, host_id in list(self._hosts.items()):
            if host_id == presence.user_id:
                task = asyncio.get_running_loop().create_task(self._store(guild_id, presence))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    async def _store(self, guild_id: int, presence: Presence) -> None:
        try:
            session = await self._sessions.get_session(guild_id)
            if session is None or session.host_user_id != presence.user_id:
                return
            now = self._clock()
            snapshot = snapshot_of(presence, session.snapshot, now)
            changes: SessionFields = {"snapshot": snapshot}
            if snapshot.is_playing:
                changes["host_active_at"] = now
            await self._sessions.update_session(guild_id, changes)
            if self._on_playback is not None:
                await self._on_playback(guild_id, snapshot)
        except Exception:
            log.exception("guild %s: storing the host's presence failed", guild_id)

    async def session_started(self, session: Session) -> None:
        self._hosts[session.guild_id] = session.host_user_id
        presence = self._board.get(session.host_user_id)
        if presence is not None:
            await self._store(session.guild_id, presence)

    async def session_changed(self, session: Session) -> None:
        if self._hosts.get(session.guild_id) != session.host_user_id:
            await self.session_started(session)

    async def session_ended(self, session: Session, reason: str) -> None:
        self._hosts.pop(session.guild_id, None)

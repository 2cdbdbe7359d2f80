"""Listen along in a browser: the answer for players without Spotify Premium (DESIGN §5).

Each session can hand out one unguessable listen token (stored in `Session.listen_token`, so it
is gone when the session record is). Browsers that open the page subscribe to a `Feed`: one per
watched session, shared by all its subscribers, that polls the stored session (the sync engine
writes the host snapshot there every round, possibly from another process), resolves the
current track's stream once, and wakes every subscriber when something they must act on
changed: the track, play/pause, a position jump, the people, the stream, or the end.

`audience(guild_id)` is how many browsers listen right now; `watch_audience` tells the status
board when that changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from core.errors import NotFound, UserFacingError
from core.listen_view import (
    Change,
    ListenView,
    StreamState,
    StreamStatus,
    on_spotify,
    playback_change,
)
from core.presence import PresenceBoard
from core.sessions import NoSession
from core.tracks import TrackInfo
from storage.base import SessionStore
from storage.records import CachedStream, Session

# The view types are re-exported: the web routes and tests read them as core.listen's.
__all__ = [
    "Change",
    "Feed",
    "ListenAlong",
    "ListenConfig",
    "ListenView",
    "StreamState",
    "StreamStatus",
    "Subscription",
    "looks_like_token",
    "playback_change",
]

log = logging.getLogger(__name__)

# 32 URL-safe characters: 192 random bits.
TOKEN_BYTES = 24
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")


def looks_like_token(value: str) -> bool:
    return bool(TOKEN_PATTERN.fullmatch(value))


class StreamSource(Protocol):
    """A playable stream for a Spotify track (core.resolver.Resolver)."""

    async def resolve(self, track: TrackInfo, force: bool = False) -> CachedStream: ...

    async def resolve_id(self, spotify_id: str, force: bool = False) -> CachedStream: ...


class TrackLookup(Protocol):
    """Track metadata by id (SpotifyClient.track)."""

    async def track(self, track_id: str) -> TrackInfo: ...


@dataclass(frozen=True)
class ListenConfig:
    poll_interval_s: float = 0.3  # how often a watched session is read from storage
    jump_threshold_ms: int = 750  # a position change beyond elapsed time by this is a seek
    refresh_margin_s: float = 120.0  # re-resolve a stream URL this long before it expires


class Subscription:
    """One browser's view of a feed. `next()` waits for a change; `close()` leaves."""

    def __init__(self, feed: Feed) -> None:
        self._feed = feed
        self._woken = asyncio.Event()
        self._seen = -1

    @property
    def view(self) -> ListenView:
        return self._feed.view

    def wake(self) -> None:
        self._woken.set()

    async def next(self, within_s: float) -> ListenView | None:
        """The view once it changed since last seen, or None after `within_s` seconds."""
        if self._feed.view.version == self._seen:
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):
                    await self._woken.wait()
        view = self._feed.view
        if view.version == self._seen:
            return None
        self._seen = view.version
        return view


class Feed:
    """One watched session: polls storage, resolves the stream, wakes subscribers."""

    def __init__(
        self,
        session: Session,
        owner: ListenAlong,
    ) -> None:
        self.guild_id = session.guild_id
        self.token = session.listen_token
        self._owner = owner
        self.subscribers: set[Subscription] = set()
        self.view = ListenView(
            guild_id=session.guild_id,
            host_user_id=session.host_user_id,
            listener_ids=on_spotify(session),
            snapshot=None,
        )
        self._resolving: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._apply(session)

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name=f"listen-feed-{self.guild_id}")

    async def aclose(self) -> None:
        for task in (self._task, self._resolving):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def end(self) -> None:
        if not self.view.ended:
            self._publish(replace(self.view, ended=True), Change.ENDED)

    def _publish(self, view: ListenView, change: Change) -> None:
        self.view = replace(view, change=change, version=self.view.version + 1)
        for sub in self.subscribers:
            sub.wake()

    def set_audience(self, count: int) -> None:
        self._publish(replace(self.view, audience=count), Change.PEOPLE)

    async def _watch(self) -> None:
        config = self._owner.config
        while not self.view.ended:
            await asyncio.sleep(config.poll_interval_s)
            try:
                session = await self._owner.sessions.get_session(self.guild_id)
            except Exception:  # a storage blip: keep the browsers, try again next poll
                log.warning("guild %s: reading the session for listeners failed", self.guild_id)
                continue
            if session is None or session.listen_token != self.token:
                self.end()
                return
            self._apply(session)

    def _apply(self, session: Session) -> None:
        """Adopt a freshly read session; wake subscribers when they must act."""
        view = self.view
        snapshot = session.snapshot
        change = playback_change(view.snapshot, snapshot, self._owner.config.jump_threshold_ms)
        people = (session.host_user_id, on_spotify(session))
        new = replace(
            view,
            snapshot=snapshot,
            host_user_id=people[0],
            listener_ids=people[1],
        )
        track_id = snapshot.track_id if snapshot else None
        if change is Change.TRACK:
            # The page shows "resolving" (and stops the old track) until the stream is found.
            status = StreamStatus.NONE if track_id is None else StreamStatus.RESOLVING
            new = replace(new, track=None, stream=StreamState(status))
            self._start_resolving(track_id)
        elif self._stream_expiring(new.stream):
            self._start_resolving(track_id)
        if change is not None:
            self._publish(new, change)
        elif people != (view.host_user_id, view.listener_ids):
            self._publish(new, Change.PEOPLE)
        else:
            # Same playback within extrapolation: keep the newest numbers for the beacons
            # without waking anyone.
            self.view = new

    def _stream_expiring(self, stream: StreamState) -> bool:
        if stream.status is not StreamStatus.READY or self._resolving is not None:
            return False
        return stream.expires_at - self._owner.clock() < self._owner.config.refresh_margin_s

    def _start_resolving(self, track_id: str | None) -> None:
        if self._resolving is not None:
            self._resolving.cancel()
            self._resolving = None
        if track_id is None:
            return
        self._resolving = asyncio.create_task(
            self._resolve(track_id), name=f"listen-resolve-{self.guild_id}"
        )

    async def _resolve(self, track_id: str) -> None:
        track = await self._owner.track_info(track_id)
        stream: StreamState
        try:
            streams = self._owner.streams
            # With the metadata at hand a cache miss need not look the track up again.
            if track is not None and track.id == track_id:
                found = await streams.resolve(track)
            else:
                found = await streams.resolve_id(track_id)
            stream = StreamState(StreamStatus.READY, found.stream_url, found.expires_at)
        except UserFacingError as exc:
            log.info("guild %s: no browser stream for %s: %s", self.guild_id, track_id, exc)
            stream = StreamState(StreamStatus.FAILED, message=str(exc))
        except Exception:
            log.exception("guild %s: resolving %s for listeners failed", self.guild_id, track_id)
            stream = StreamState(
                StreamStatus.FAILED, message="The audio for this track could not be found."
            )
        finally:
            if self._resolving is asyncio.current_task():  # not a newer resolution's slot
                self._resolving = None
        current = self.view.snapshot
        if current is None or current.track_id != track_id:
            return  # the host moved on while this resolved
        self._publish(replace(self.view, track=track, stream=stream), Change.STREAM)


class ListenAlong:
    """Listen tokens and the feeds of watched sessions. One instance per process."""

    def __init__(
        self,
        sessions: SessionStore,
        streams: StreamSource,
        tracks: TrackLookup | None = None,
        *,
        config: ListenConfig | None = None,
        clock: Callable[[], float] = time.time,
        presence: PresenceBoard | None = None,
    ) -> None:
        self.sessions = sessions
        self.presence = presence  # names a track when Spotify cannot (quota hold)
        self.streams = streams
        self.tracks = tracks
        self.config = config or ListenConfig()
        self.clock = clock
        self._feeds: dict[int, Feed] = {}
        self._token_guilds: dict[str, int] = {}
        self._issuing: dict[int, asyncio.Lock] = {}
        self._audience_watchers: list[Callable[[int, int], object]] = []
        self._track_cache: dict[str, TrackInfo] = {}

    # --- tokens -----------------------------------------------------------------------------

    async def token_for(self, guild_id: int) -> str:
        """The session's listen token, made and stored on first request."""
        async with self._issuing.setdefault(guild_id, asyncio.Lock()):
            session = await self.sessions.get_session(guild_id)
            if session is None:
                raise NoSession()
            if session.listen_token:
                return session.listen_token
            token = secrets.token_urlsafe(TOKEN_BYTES)
            if not await self.sessions.update_session(guild_id, {"listen_token": token}):
                raise NoSession()
            # Another process may have issued one at the same moment: the stored one wins.
            stored = await self.sessions.get_session(guild_id)
            if stored is None or not stored.listen_token:
                raise NoSession()
            log.info("guild %s: listen link issued", guild_id)
            return stored.listen_token

    async def find(self, token: str) -> Session | None:
        """The running session this token belongs to, or None (unknown, or session over)."""
        if not looks_like_token(token):
            return None
        guild_id = self._token_guilds.get(token)
        if guild_id is not None:
            session = await self.sessions.get_session(guild_id)
            if session is not None and _same(session.listen_token, token):
                return session
            del self._token_guilds[token]
        session = await self.sessions.get_session_by_listen_token(token)
        if session is not None and _same(session.listen_token, token):
            self._token_guilds[token] = session.guild_id
            return session
        return None

    # --- feeds ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self, token: str) -> AsyncIterator[Subscription]:
        """Follow the session of `token` until the context exits; NotFound when it is over."""
        session = await self.find(token)
        if session is None:
            raise NotFound("This listen link has ended or never existed.")
        feed = self._feeds.get(session.guild_id)
        if feed is None or feed.view.ended:
            feed = Feed(session, self)
            self._feeds[session.guild_id] = feed
            feed.start()
        sub = Subscription(feed)
        feed.subscribers.add(sub)
        self._audience_changed(feed)
        try:
            yield sub
        finally:
            feed.subscribers.discard(sub)
            if not feed.subscribers:
                if self._feeds.get(feed.guild_id) is feed:
                    del self._feeds[feed.guild_id]
                await feed.aclose()
            self._audience_changed(feed)

    def audience(self, guild_id: int) -> int:
        """How many browsers listen along to this guild's session right now."""
        feed = self._feeds.get(guild_id)
        return len(feed.subscribers) if feed is not None and not feed.view.ended else 0

    def watch_audience(self, callback: Callable[[int, int], object]) -> None:
        """Call `callback(guild_id, count)` whenever a browser arrives or leaves."""
        self._audience_watchers.append(callback)

    def _audience_changed(self, feed: Feed) -> None:
        count = len(feed.subscribers)
        if feed.subscribers and not feed.view.ended:
            feed.set_audience(count)
        for callback in self._audience_watchers:
            try:
                callback(feed.guild_id, count)
            except Exception:
                log.exception("guild %s: audience watcher failed", feed.guild_id)

    def end_all(self) -> None:
        """Tell every browser the page is closing (process shutdown): their streams end."""
        for feed in list(self._feeds.values()):
            feed.end()

    async def aclose(self) -> None:
        self.end_all()
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.aclose()

    async def track_info(self, track_id: str) -> TrackInfo | None:
        """Title, artists and art for the page; None when Spotify cannot say."""
        if track_id in self._track_cache:
            return self._track_cache[track_id]
        if self.tracks is None:
            return None
        try:
            info = await self.tracks.track(track_id)
        except Exception as exc:  # the page still plays without a title
            log.info("track %s lookup for the listen page failed: %r", track_id, exc)
            return self._from_presence(track_id)
        if len(self._track_cache) >= 256:
            self._track_cache.clear()
        self._track_cache[track_id] = info
        return info

    def _from_presence(self, track_id: str) -> TrackInfo | None:
        """The track as Discord shows it: enough to find its audio while Spotify holds us."""
        seen = self.presence.listening_to(track_id) if self.presence is not None else None
        if seen is None:
            return None
        return TrackInfo(seen.track_id, seen.title, seen.artists, seen.album, seen.duration_ms or 0)


def _same(stored: str | None, token: str) -> bool:
    return stored is not None and hmac.compare_digest(stored, token)

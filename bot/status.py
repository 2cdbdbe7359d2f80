"""The status message of a game night: an embed kept current, with Join / Leave buttons.

`StatusBoard` posts the message when a session starts and edits it whenever the session
changes (it is a `SessionWatcher`), or when the sync engine reports new playback
(`show_playback`). One code path creates a message (`_create`, under the guild's lock): the
start's `post`, or an update that finds the message deleted. An update that comes before the
start posted anything edits nothing and posts nothing, so a fast first sync round cannot leave
a second message with live buttons behind. The buttons are a persistent view (fixed
custom_ids, registered at start-up), so they keep working on messages posted before a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import discord

from core.sessions import SessionService
from core.tracks import TrackInfo
from storage.records import ListenerState, ListenerStatus, Session

log = logging.getLogger(__name__)

COLOUR = discord.Colour(0x1DB954)  # Spotify green
ENDED_COLOUR = discord.Colour.dark_grey()

_STATE_LINES: dict[ListenerStatus, str] = {
    ListenerStatus.ATTACHED: "🟢 in sync",
    ListenerStatus.DETACHED: "🟡 doing their own thing — /gamenight resync to follow again",
    ListenerStatus.NO_DEVICE: "⚪ no Spotify device open — open Spotify on any device",
    ListenerStatus.PREMIUM_REQUIRED: "🔒 needs Spotify Premium — /gamenight listen plays along in "
    "a browser",
    ListenerStatus.NEEDS_RELINK: "🔑 must run /link again",
    ListenerStatus.ERROR: "🔴 trouble reaching Spotify",
}

AUDIENCE_REFRESH_S = 2.0

_END_REASONS = {
    "stopped": "The host ended the game night.",
    "stopped_by_manager": "A server manager ended the game night.",
    "idle": "The host's Spotify was idle for too long, so the game night ended.",
}


class TrackLookup(Protocol):
    """Track metadata by id (SpotifyClient.track satisfies it)."""

    async def track(self, track_id: str) -> TrackInfo: ...


def listener_line(state: ListenerState) -> str:
    line = f"<@{state.user_id}> — {_STATE_LINES.get(state.status, state.status.value)}"
    # The fixed lines already say what the engine's detail says, except for a trouble's cause.
    if state.detail and state.status is ListenerStatus.ERROR:
        line += f" ({state.detail[:80]})"
    return line


def render_status(
    session: Session,
    track: TrackInfo | None,
    is_playing: bool,
    browser_listeners: int = 0,
    *,
    host_unreadable: bool = False,
    voice: str | None = None,
) -> discord.Embed:
    """The status embed: host, what's playing (with art), every listener's state, and how many
    listen along in a browser (/gamenight listen)."""
    embed = discord.Embed(title="🎮 Game night", colour=COLOUR)
    embed.description = f"Hosted by <@{session.host_user_id}>. Press **Join** to listen along."
    if track is not None:
        state = "▶️ Playing" if is_playing else "⏸️ Paused"
        if host_unreadable:  # neither: the host's link is dead, listeners keep what they play
            state = "⚠️ Can't read the host's Spotify"
        value = f"{state}: **{track.name}**"
        if track.artists:
            value += f"\n{', '.join(track.artists)}"
        if track.album:
            value += f" · {track.album}"
        embed.add_field(name="Now playing", value=value[:1024], inline=False)
        if track.album_art_url:
            embed.set_thumbnail(url=track.album_art_url)
    else:
        embed.add_field(
            name="Now playing", value="Nothing yet — the host's Spotify is quiet.", inline=False
        )
    listeners = sorted(session.listeners.values(), key=lambda s: s.joined_at)
    lines = [listener_line(s) for s in listeners]
    if browser_listeners:
        lines.append(f"🌐 {browser_listeners} in the browser (/gamenight listen)")
    lines = lines or ["Nobody yet."]
    text = "\n".join(lines)
    if len(text) > 1024:
        text = text[:1000].rsplit("\n", 1)[0] + "\n…"
    embed.add_field(name=f"Listeners ({len(listeners)})", value=text, inline=False)
    if voice:  # the voice channel the bot plays in (bot/voice.py)
        embed.add_field(name="Voice", value=voice[:1024], inline=False)
    embed.set_footer(text="Keep Spotify open on a device. Drifted? /gamenight resync")
    return embed


def render_ended(session: Session | None, reason: str) -> discord.Embed:
    embed = discord.Embed(title="🎮 Game night is over", colour=ENDED_COLOUR)
    embed.description = _END_REASONS.get(reason, "This game night has ended.")
    embed.description += " Start another with /gamenight start."
    return embed


class StatusBoard:
    """Keeps each session's status message current; implements `SessionWatcher`."""

    def __init__(
        self,
        client: discord.Client,
        sessions: SessionService,
        buttons: Callable[[], discord.ui.View],
        tracks: TrackLookup | None = None,
        audience: Callable[[int], Awaitable[int]] | None = None,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._buttons = buttons
        self._tracks = tracks
        # Browsers on the listen page, by guild, from storage: they may be on another process.
        self._audience = audience
        self._audience_refresh: dict[int, asyncio.Task[None]] = {}
        self._track_cache: dict[str, TrackInfo] = {}
        self._playback: dict[int, tuple[TrackInfo | None, bool, bool]] = {}  # from the engine
        self._locks: dict[int, asyncio.Lock] = {}  # one writer of a guild's message at a time
        # Where each guild's message is, kept after the session record is gone, so an end
        # reported after deletion (the sync engine's idle timeout) can still be shown.
        self._messages: dict[int, tuple[int, int]] = {}
        self.voice_line: Callable[[int], str | None] = lambda guild_id: None  # bot/voice.py

    async def aclose(self) -> None:
        """Cancel the pending audience refreshes (the bot is closing)."""
        tasks = list(self._audience_refresh.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._audience_refresh.clear()

    def _lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    # --- SessionWatcher -----------------------------------------------------------------

    async def session_started(self, session: Session) -> None:
        if session.status_message_id is not None:  # resumed after a restart
            await self.refresh(session)

    async def session_changed(self, session: Session) -> None:
        await self.refresh(session)

    async def session_ended(self, session: Session, reason: str) -> None:
        async with self._lock(session.guild_id):  # after any refresh under way, never before
            await self._show_ended(session, reason)

    async def _show_ended(self, session: Session, reason: str) -> None:
        self._playback.pop(session.guild_id, None)
        where = self._messages.pop(session.guild_id, None)
        if session.channel_id is not None and session.status_message_id is not None:
            where = (session.channel_id, session.status_message_id)
        if where is None:
            return
        message = self._client.get_partial_messageable(where[0]).get_partial_message(where[1])
        try:
            await message.edit(embed=render_ended(session, reason), view=None)
        except discord.HTTPException as exc:
            log.info("guild %s: could not mark the status message ended: %s", session.guild_id, exc)

    # --- for the sync engine ------------------------------------------------------------

    async def show_playback(
        self,
        guild_id: int,
        track: TrackInfo | None,
        is_playing: bool,
        host_unreadable: bool = False,
    ) -> None:
        """The host's playback changed: show it."""
        self._playback[guild_id] = (track, is_playing, host_unreadable)
        session = await self._sessions.find(guild_id)
        if session is not None:
            await self.refresh(session)

    async def mark_gone(self, guild_id: int) -> None:
        """The session vanished without a reported end: no live buttons may stay behind."""
        async with self._lock(guild_id):
            await self._show_gone(guild_id)

    async def _show_gone(self, guild_id: int) -> None:
        self._playback.pop(guild_id, None)
        where = self._messages.pop(guild_id, None)
        if where is None:
            return  # its end was shown already (or it never had a message here)
        message = self._client.get_partial_messageable(where[0]).get_partial_message(where[1])
        try:
            await message.edit(embed=render_ended(None, "gone"), view=None)
        except discord.HTTPException as exc:
            log.info("guild %s: could not mark the status message ended: %s", guild_id, exc)

    # --- for the listen page ------------------------------------------------------------

    async def browser_listeners(self, session: Session) -> int:
        if self._audience is None:
            return 0
        try:
            return await self._audience(session.guild_id)
        except Exception as exc:  # storage trouble: the message still shows the rest
            log.info("guild %s: no browser count for the status message: %r", session.guild_id, exc)
            return 0

    def audience_changed(self, guild_id: int, count: int) -> None:
        """A browser opened or closed the listen page: show the count, at most every 2 s
        (page reloads come in bursts and each edit costs a Discord call)."""
        if guild_id in self._audience_refresh:
            return

        async def later() -> None:
            try:
                await asyncio.sleep(AUDIENCE_REFRESH_S)
                session = await self._sessions.find(guild_id)
                if session is not None:
                    await self.refresh(session)
            finally:
                self._audience_refresh.pop(guild_id, None)

        self._audience_refresh[guild_id] = asyncio.create_task(later())

    def voice_changed(self, guild_id: int) -> None:
        """The voice channel or its people changed: refresh like for the browser count."""
        self.audience_changed(guild_id, 0)

    # --- posting and editing ------------------------------------------------------------

    async def post(self, session: Session, channel: discord.abc.Messageable) -> discord.Message:
        """Post the status message for a new session and remember where it is."""
        async with self._lock(session.guild_id):
            return await self._create(session, channel)

    async def _create(self, session: Session, channel: discord.abc.Messageable) -> discord.Message:
        """The one place a status message is created (callers hold the guild's lock)."""
        embed = await self._embed(session)
        message = await channel.send(embed=embed, view=self._buttons())
        self._messages[session.guild_id] = (message.channel.id, message.id)
        await self._sessions.set_status_message(session.guild_id, message.channel.id, message.id)
        return message

    async def _embed(self, session: Session) -> discord.Embed:
        """The status embed of `session` as it is now (host's track, audience, voice)."""
        track, playing, unreadable = await self._now(session)
        return render_status(
            session,
            track,
            playing,
            await self.browser_listeners(session),
            host_unreadable=unreadable,
            voice=self.voice_line(session.guild_id),
        )

    async def refresh(self, session: Session) -> None:
        """Edit the status message; post a new one if it was deleted. Never raises."""
        async with self._lock(session.guild_id):
            # Re-read under the lock: a message posted meanwhile (the start) is the one to edit,
            # and a session ended meanwhile keeps its "over" message (no live buttons back).
            current = await self._sessions.find(session.guild_id)
            if current is None:
                return
            session = current
            message_id = session.status_message_id
            if message_id is None and session.guild_id in self._messages:
                message_id = self._messages[session.guild_id][1]
            if session.channel_id is None or message_id is None:
                return  # not posted yet: the start posts it, showing what is current then
            embed = await self._embed(session)
            channel = self._client.get_partial_messageable(session.channel_id)
            try:
                try:
                    await channel.get_partial_message(message_id).edit(
                        embed=embed, view=self._buttons()
                    )
                    self._messages[session.guild_id] = (session.channel_id, message_id)
                    return
                except discord.NotFound:
                    log.info("guild %s: status message gone, posting a new one", session.guild_id)
                await self._create(session, channel)
            except discord.HTTPException as exc:
                log.warning(
                    "guild %s: could not update the status message: %s", session.guild_id, exc
                )

    async def now_playing(self, session: Session) -> tuple[TrackInfo | None, bool]:
        track, playing, _ = await self._now(session)
        return track, playing

    async def _now(self, session: Session) -> tuple[TrackInfo | None, bool, bool]:
        if session.guild_id in self._playback:
            return self._playback[session.guild_id]
        snapshot = session.snapshot
        if snapshot is None or snapshot.track_id is None:
            return None, False, False
        return await self._track(snapshot.track_id), snapshot.is_playing, False

    async def _track(self, track_id: str) -> TrackInfo | None:
        if track_id in self._track_cache:
            return self._track_cache[track_id]
        if self._tracks is None:
            return None
        try:
            info = await self._tracks.track(track_id)
        except Exception as exc:  # a missing title must not break the status message
            log.info("track %s lookup failed for the status message: %r", track_id, exc)
            return None
        if len(self._track_cache) > 512:
            self._track_cache.clear()
        self._track_cache[track_id] = info
        return info

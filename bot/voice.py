"""The bot in a voice channel, playing the host's track at the host's position.

`VoicePlayers` keeps one `GuildVoice` per guild. A `GuildVoice` owns a discord.py voice
connection and one task that wakes when the host's presence changes (and on a slow tick;
when the presence shows no Spotify and the bot has a Spotify app, the sync engine's stored
snapshot of the host stands in),
asks `core.voice.decide` what to do, and does it: resolve the track's stream (our resolver),
start ffmpeg on it at the host's position plus the measured start-up, stop on pause, restart
on a seek, skip a track whose audio cannot be found (with a note on the status message),
re-resolve a stream that is refused. ffmpeg reads through our own relay (bot/voice_relay.py):
the IP-bound stream URL is fetched the way yt-dlp extracted it (source address, proxy).

Connections are made with discord.py's `reconnect=False`: its own reconnect loop retries
forever on most close codes and, for 4017, returns a dead client after 25 s. Instead a
dropped connection is re-made here at most `MAX_RECONNECTS` times per `RECONNECT_WINDOW_S`;
after that it leaves cleanly and says so in the game night's channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import discord
from discord.channel import VocalGuildChannel

from bot.voice_channel import (
    FFMPEG_INPUT,
    CountingSource,
    Ffmpeg,
    VoiceRefused,
    check_can_join,
    connect,
    humans_in,
    let_go,
)
from bot.voice_relay import VoiceRelay
from core.errors import UserFacingError
from core.presence import Presence, PresenceBoard
from core.resolver import Resolver
from core.voice import HostPlayback, Play, Playing, Quiet, decide, host_playback
from storage.records import Session

log = logging.getLogger(__name__)

MAX_RECONNECTS = 2
RECONNECT_WINDOW_S = 300.0
RECONNECT_DELAY_S = 1.0
GRID_MS = 20  # discord.py's player sends frame k at play() + 20 ms * (k + 1)
REFUSED_FRAMES = 10  # a stream that ends within 200 ms was refused, not finished
# discord.py's player waits out a reconnect (a move) and goes on where it was: the channel then
# lags the host for good. Behind the clock by this much for this long, the play is restarted.
STALL_MS = 200
STALL_FOR_S = 1.0


@dataclass(frozen=True)
class VoiceConfig:
    auto_join: bool = False
    empty_timeout_s: float = 60.0
    connect_timeout_s: float = 15.0
    tick_s: float = 1.0


class GuildVoice:
    """One guild's voice connection following its host."""

    def __init__(
        self,
        players: VoicePlayers,
        vc: discord.VoiceClient,
        host_id: int,
        volume: float,
    ) -> None:
        self.players = players
        self.vc = vc
        self.guild_id = vc.guild.id
        self.channel: VocalGuildChannel = vc.channel
        self.host_id = host_id
        self.volume = volume
        self.note: str | None = None  # shown on the status message
        self.playing: Playing | None = None
        self._wake = asyncio.Event()
        self._generation = 0
        self._source: CountingSource | None = None
        self._skipped: str | None = None
        self._titles: dict[str, str] = {}  # for the status note when a stream fails late
        self._force: str | None = None  # re-resolve this track (its URL was refused)
        self._forced: set[str] = set()
        self._reconnects: list[float] = []
        self._moved_at: float | None = None  # someone dragged the bot to another channel
        self._move_dropped = False  # ... and discord.py has left the old voice server since
        self._behind_since: float | None = None  # the player fell behind the clock
        self._empty_since: float | None = None
        self._startup_ms = 15.0  # ffmpeg spawn; learnt from every play
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"voice-{self.guild_id}")

    def wake(self) -> None:
        self._wake.set()

    def set_volume(self, volume: float) -> None:
        self.volume = volume
        if self._source is not None:
            self._source.volume = volume

    def humans(self) -> int:
        return humans_in(self.vc.channel)

    def moved(self, channel: VocalGuildChannel) -> None:
        """Someone (a moderator) moved the bot to `channel`: it plays on there. discord.py
        connects to the new channel's voice server itself (the old websocket closes with
        4014); until it has, the connection looks dropped and must not be re-made here (that
        would race it, and go back to the old channel)."""
        log.info("guild %s: moved to voice channel %s; playing on there", self.guild_id,
                 channel.id)  # fmt: skip
        self.channel = channel
        self._moved_at = time.monotonic()
        self._move_dropped = False
        self.wake()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._silence()
        await let_go(self.vc)

    # --- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.players.config.tick_s):
                        await self._wake.wait()
                self._wake.clear()
                reason = await self._step()
                if reason is not None:
                    await self.players.leave(self.guild_id, reason)
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("guild %s: the voice player failed", self.guild_id)
            await self.players.leave(self.guild_id, "error")

    async def _step(self) -> str | None:
        """One round; returns why to leave, or None to go on."""
        if not self.vc.is_connected():
            if self._moving():
                self._move_dropped = True
                return None  # discord.py is still connecting to the new channel
            if not await self._reconnect():
                return "lost"
        elif self._move_dropped:  # the move is done: a drop from now on is a drop
            self._moved_at, self._move_dropped = None, False
        self.channel = self.vc.channel
        if self.humans() == 0:
            now = time.monotonic()
            self._empty_since = self._empty_since or now
            if now - self._empty_since >= self.players.config.empty_timeout_s:
                return "empty"
        else:
            self._empty_since = None
        if self._stalled(time.monotonic()):
            log.info("guild %s: voice fell behind; playing from the host's position again",
                     self.guild_id)  # fmt: skip
            self._silence()
        host = await self.players.host_playback(self.guild_id, self.host_id)
        action = decide(self.playing, host, time.monotonic(), skipped=self._skipped)
        if isinstance(action, Quiet):
            self._silence()
        elif isinstance(action, Play):
            self._skipped = None
            await self._play(action)
        return None

    def _stalled(self, now: float) -> bool:
        """Whether the audio sent (frames read) has lagged the clock for `STALL_FOR_S`."""
        playing, source = self.playing, self._source
        if playing is None or source is None or not self.vc.is_playing():  # or ran out
            self._behind_since = None
            return False
        sent_ms = playing.start_ms + source.frames * GRID_MS
        if playing.position_at(now) - sent_ms < STALL_MS:
            self._behind_since = None
            return False
        self._behind_since = self._behind_since or now
        return now - self._behind_since >= STALL_FOR_S

    def _moving(self) -> bool:
        """Within the time discord.py takes to follow a move. Connected again after a
        drop ends it early; connected before any drop does not (the new voice server's event
        may still be on its way)."""
        since = self._moved_at
        return (
            since is not None and time.monotonic() - since < self.players.config.connect_timeout_s
        )

    async def _reconnect(self) -> bool:
        now = time.monotonic()
        self._reconnects = [t for t in self._reconnects if now - t < RECONNECT_WINDOW_S]
        if len(self._reconnects) >= MAX_RECONNECTS:
            log.info("guild %s: voice dropped again; giving up", self.guild_id)
            return False
        self._reconnects.append(now)
        self._silence()
        log.info("guild %s: voice connection dropped; reconnecting", self.guild_id)
        await let_go(self.vc)
        # discord.py may still be finishing its own disconnect (op 4 out, its answer back);
        # an answer landing after our new op 4 would end the new connection at once.
        await asyncio.sleep(RECONNECT_DELAY_S)
        try:
            self.vc = await connect(self.channel, self.players.config.connect_timeout_s)
        except VoiceRefused as exc:
            log.info("guild %s: voice reconnect failed: %s", self.guild_id, exc)
            return False
        return True

    def _silence(self) -> None:
        self._generation += 1
        self.playing = None
        self._source = None
        self._behind_since = None
        if self.vc.is_playing() or self.vc.is_paused():
            self.vc.stop()

    async def _play(self, action: Play) -> None:
        track = action.track
        if len(self._titles) > 256:
            self._titles.clear()
        self._titles[track.id] = track.title_line
        force = self._force == track.id
        self._force = None
        try:
            stream = await self.players.resolver.resolve(track, force=force)
        except Exception as exc:  # any failure to find audio skips the track, loudly
            if not isinstance(exc, UserFacingError):
                log.exception("guild %s: resolving %s failed", self.guild_id, track.id)
            self._skip(track.id, track.title_line)
            return
        self._silence()
        generation = self._generation
        began = time.monotonic()
        start_ms = action.host.position_at(began) + int(self._startup_ms) + GRID_MS
        audio = Ffmpeg(
            # The relay serves the entry just resolved (the resolver's memory has it); it
            # re-extracts once itself when YouTube refuses the URL early.
            self.players.relay.url(stream.track_id),
            before_options=f"-ss {start_ms / 1000:.3f} {FFMPEG_INPUT}",
            options="-vn -loglevel error",  # after discord.py's own "-loglevel warning"
        )
        source = CountingSource(audio, self.volume)
        spawned = time.monotonic()
        self._startup_ms = 0.7 * self._startup_ms + 0.3 * (spawned - began) * 1000
        loop = asyncio.get_running_loop()

        def after(error: Exception | None) -> None:
            loop.call_soon_threadsafe(self._ended, generation, track.id, source.frames, error)

        self.vc.play(source, after=after)
        self._source = source
        self.playing = Playing(track.id, start_ms - GRID_MS, spawned)
        self.note = None
        self.players.changed(self.guild_id)
        log.info("guild %s: voice plays %s from %d ms", self.guild_id, track.id, start_ms)

    def _skip(self, track_id: str, title: str) -> None:
        self._silence()
        self._skipped = track_id
        self.note = f"⚠️ No audio found for {title}; skipped it in voice."
        self.players.changed(self.guild_id)

    def _ended(self, generation: int, track_id: str, frames: int, error: Exception | None) -> None:
        if generation != self._generation or self._closing:
            return  # a play we replaced
        if error is not None:
            log.info("guild %s: voice playback error: %r", self.guild_id, error)
        if frames >= REFUSED_FRAMES:
            return  # the audio ran out; the host's next track will come as a presence
        self.playing = None
        if track_id in self._forced:
            self._skip(track_id, self._titles.get(track_id, "this track"))
            return
        log.info("guild %s: the stream of %s was refused; resolving it again", self.guild_id,
                 track_id)  # fmt: skip
        self._forced.add(track_id)
        self._force = track_id
        self.wake()


class VoicePlayers:
    """Every guild's voice player; also the `SessionHooks` that end and auto-start them."""

    def __init__(
        self,
        client: discord.Client,
        board: PresenceBoard,
        resolver: Resolver,
        relay: VoiceRelay,
        config: VoiceConfig,
    ) -> None:
        self.client = client
        self.board = board
        self.resolver = resolver
        self.relay = relay
        self.config = config
        # The sync engine's view of the host, for hosts without a presence (Spotify app only).
        self.snapshots: Callable[[int], Awaitable[HostPlayback | None]] | None = None
        self.on_change: Callable[[int], Any] | None = None  # the status message
        self.on_leave: Callable[[int, str], Coroutine[Any, Any, None]] | None = (
            None  # say why we left
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._guilds: dict[int, GuildVoice] = {}
        self._unsubscribe = board.subscribe(self._presence)

    def get(self, guild_id: int) -> GuildVoice | None:
        return self._guilds.get(guild_id)

    async def host_playback(self, guild_id: int, host_id: int) -> HostPlayback | None:
        """The host's playback: their presence; when it shows no Spotify (paused, or not
        shared with Discord), the sync engine's snapshot if the bot has a Spotify app (the
        engine sees a pause within its poll interval too)."""
        presence = self.board.get(host_id)
        listening = presence is not None and presence.listening is not None
        if listening or self.snapshots is None:
            return host_playback(presence)
        try:
            return await self.snapshots(guild_id)
        except Exception as exc:  # a storage or Spotify blip: try again next round
            log.info("guild %s: reading the host's snapshot failed: %r", guild_id, exc)
            return None

    def _presence(self, presence: Presence) -> None:
        for guild in self._guilds.values():
            if guild.host_id == presence.user_id:
                guild.wake()

    def changed(self, guild_id: int) -> None:
        if self.on_change is not None:
            self.on_change(guild_id)

    def status_line(self, guild_id: int) -> str | None:
        """The status message's voice line, or None when the bot is not in voice."""
        player = self._guilds.get(guild_id)
        if player is None or player.vc.channel is None:
            return None
        people = player.humans()
        line = (
            f"🔊 In {player.vc.channel.mention} · {people} {'person' if people == 1 else 'people'}"
        )
        return f"{line}\n{player.note}" if player.note else line

    async def join(self, channel: VocalGuildChannel, host_id: int, volume: float) -> GuildVoice:
        guild_id = channel.guild.id
        player = self._guilds.get(guild_id)
        if player is not None and player.vc.is_connected():
            player.host_id = host_id
            player.set_volume(volume)
            if player.vc.channel != channel:
                check_can_join(channel)
                await player.vc.move_to(channel)
            player.wake()
            return player
        if player is not None:
            await self.leave(guild_id, "replaced", quiet=True)
        check_can_join(channel)
        vc = await connect(channel, self.config.connect_timeout_s)
        player = GuildVoice(self, vc, host_id, volume)
        self._guilds[guild_id] = player
        player.start()
        player.wake()
        self.changed(guild_id)
        return player

    async def leave(self, guild_id: int, reason: str, *, quiet: bool = False) -> bool:
        player = self._guilds.pop(guild_id, None)
        if player is None:
            return False
        await player.close()
        log.info("guild %s: left voice (%s)", guild_id, reason)
        self.changed(guild_id)
        if not quiet and self.on_leave is not None:
            task = asyncio.create_task(self.on_leave(guild_id, reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def voice_state_changed(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        """A member moved in voice: count the channel again (and notice the bot gone)."""
        player = self._guilds.get(member.guild.id)
        if player is None:
            return
        me, channel = self.client.user, after.channel
        # From one channel to another (a reconnect of ours comes from no channel).
        to_another = before.channel is not None and channel not in (None, before.channel)
        if me is not None and member.id == me.id and to_another and channel is not None:
            player.moved(channel)
        player.wake()  # the bot itself removed or moved: the next round notices
        self.changed(member.guild.id)

    async def aclose(self) -> None:
        self._unsubscribe()
        for guild_id in list(self._guilds):
            await self.leave(guild_id, "shutdown", quiet=True)

    # --- SessionHooks -------------------------------------------------------------------

    async def session_started(self, session: Session) -> None:
        if not self.config.auto_join or session.guild_id in self._guilds:
            return
        guild = self.client.get_guild(session.guild_id)
        host = guild.get_member(session.host_user_id) if guild else None
        if host is None or host.voice is None or host.voice.channel is None:
            return
        try:
            await self.join(host.voice.channel, session.host_user_id, 1.0)
        except VoiceRefused as exc:
            log.info("guild %s: automatic voice join refused: %s", session.guild_id, exc)

    async def session_changed(self, session: Session) -> None:
        player = self._guilds.get(session.guild_id)
        if player is not None and player.host_id != session.host_user_id:
            player.host_id = session.host_user_id
            player.wake()

    async def session_ended(self, session: Session, reason: str) -> None:
        await self.leave(session.guild_id, "session ended", quiet=True)

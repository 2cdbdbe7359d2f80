"""One guild's voice player: the bot in a voice channel, playing the host's track at the
host's position.

A `GuildVoice` owns a discord.py voice connection and one task that wakes when the host's
presence changes (and on a slow tick; when the presence shows no Spotify and the bot has a
Spotify app, the sync engine's stored snapshot of the host stands in),
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
from typing import TYPE_CHECKING

import discord
from discord.channel import VocalGuildChannel

from bot.voice_channel import (
    FFMPEG_INPUT,
    CountingSource,
    Ffmpeg,
    VoiceRefused,
    connect,
    humans_in,
    let_go,
)
from core.errors import UserFacingError
from core.voice import Play, Playing, Quiet, decide

if TYPE_CHECKING:
    from bot.voice import VoicePlayers

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

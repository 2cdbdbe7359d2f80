"""Voice end to end: the real bot through the fake Discord (voice included), fake Spotify and
fake YouTube. The host's Spotify presence is what voice follows; the fake voice server decodes
what the bot plays, and the fake YouTube's audio says which track and where (its time code).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from bot.__main__ import Running, running
from tests.bot.conftest import World, _spotdl_home, world  # noqa: F401 (fixtures)
from tests.bot.test_gamenight import linked, say
from tests.fakes.discord import Member
from tests.fakes.discord_voice import Heard, VoiceChannel
from tests.fakes.youtube import FakeYouTube, track_frequency

AUDIO_S = 40  # every fake video's audio is this long; positions in tests stay below it


@dataclass(frozen=True)
class Song:
    track_id: str
    video_id: str
    title: str
    artists: tuple[str, ...]
    duration_s: int

    @property
    def hz(self) -> float:
        return track_frequency(self.video_id)


SONGS = [
    Song("4uLU6hMCjMI75M1A2tKUQC", "dQw4w9WgXcQ", "Never Gonna Give You Up", ("Rick Astley",), 213),
    Song("7tFiyTwD0nx5a1eklYtX2J", "fJ9rUzIMcZQ", "Bohemian Rhapsody", ("Queen",), 355),
]
MISSING = Song("1TfqLAPs4K3s2rJMoCokcS", "", "Unfindable Tune", ("Nobody Known",), 200)


@dataclass
class HostPosition:
    """What the test told Discord: `song` at `position_ms` at monotonic `at` (None: paused)."""

    song: Song | None
    position_ms: int = 0
    at: float = 0.0

    def at_time(self, t: float) -> float:
        return (self.position_ms + (t - self.at) * 1000) / 1000


@dataclass
class VoiceWorld:
    world: World
    youtube: FakeYouTube
    host_state: HostPosition = dataclasses.field(default_factory=lambda: HostPosition(None))

    @property
    def discord(self):  # type: ignore[no-untyped-def]
        return self.world.discord

    @asynccontextmanager
    async def run(self, **settings: object) -> AsyncIterator[Running]:
        # yt-dlp extracts from BOT_SIDE_ADDRESS (settings_for_fakes): the fake YouTube plays its
        # stream URLs only to that address, so voice must fetch them the same way (the relay).
        self.world.settings = dataclasses.replace(
            self.world.settings, youtube_base_url=self.youtube.base_url, **settings
        )
        options = {"guild_ready_timeout": 0.05, "connector": self.discord.voice.client_connector()}
        async with running(
            self.world.settings,
            client_options=options,
            ytmusic_client_factory=self.youtube.ytmusic_client,
        ) as app:
            await self.discord.wait_ready()
            await self.discord.wait_until(lambda: bool(self.discord.guild_commands))
            # The presence board goes live on discord.py's on_ready (bot/presence.py).
            assert app.bot is not None
            bot = app.bot
            await self.discord.wait_until(
                lambda: app.services.presence.available or not bot.intents.presences
            )
            yield app

    async def host_in_voice(self, room: VoiceChannel, song: Song, position_ms: int) -> Member:
        """Hana, linked and in `room`, starts a game night playing `song` from `position_ms`,
        has the bot join her in voice, and the channel hears her track in step."""
        host = await linked(self.world, "hana")
        await self.discord.voice.move(host, room)
        await say(self.world, "gamenight start", host)
        await self.play(host, song, position_ms=position_ms)
        await say(self.world, "gamenight voice join", host)
        await self.in_sync(since=0.0)
        return host

    async def play(self, member: Member, song: Song | None, position_ms: int = 0) -> None:
        """The member's Spotify presence: `song` from `position_ms` now (None: paused)."""
        now_ms = int(time.time() * 1000)
        activities = []
        if song is not None:
            start = now_ms - position_ms
            activities.append(
                {
                    "type": 2,
                    "name": "Spotify",
                    "id": "spotify:1",
                    "sync_id": song.track_id,
                    "session_id": "spotify-session",
                    "party": {"id": f"spotify:{member.user_id}"},
                    "details": song.title,
                    "state": "; ".join(song.artists),
                    "timestamps": {"start": start, "end": start + song.duration_s * 1000},
                    "assets": {"large_image": "spotify:ab67616d0000b273", "large_text": "Album"},
                    "flags": 48,
                    "created_at": now_ms,
                }
            )
        self.host_state = HostPosition(song, position_ms, time.monotonic())
        await self.discord.dispatch(
            "PRESENCE_UPDATE",
            {
                "user": {"id": str(member.user_id)},
                "guild_id": str(self.discord.default_guild.id),
                "status": "online",
                "activities": activities,
                "client_status": {"desktop": "online"},
            },
        )

    def in_step(self, heard: Heard, tolerance_s: float = 0.25) -> bool:
        """The window sounds like the host's track at the host's position."""
        song = self.host_state.song
        if song is None or heard.track_hz is None or heard.position_s is None:
            return False
        return (
            abs(heard.track_hz - song.hz) < 4
            and abs(heard.position_s - self.host_state.at_time(heard.at)) < tolerance_s
        )

    async def hears(
        self,
        check: Callable[[list[Heard]], bool],
        within: float = 10.0,
        since: float = 0.0,
        ssrc: int | None = None,
    ) -> list[Heard]:
        """Wait until `check` holds for what the channel heard after `since` (from one voice
        connection's `ssrc`, or any)."""
        deadline = time.monotonic() + within
        while True:
            heard = self.discord.voice.heard(since, ssrc=ssrc)
            if check(heard):
                return heard
            assert time.monotonic() < deadline, f"the channel heard {heard[-5:]}"
            await asyncio.sleep(0.1)

    async def in_sync(
        self, since: float, within: float = 10.0, windows: int = 5, ssrc: int | None = None
    ) -> list[Heard]:
        """Wait for `windows` consecutive windows of the host's track at the host's position."""

        def ok(heard: list[Heard]) -> bool:
            return len(heard) >= windows and all(self.in_step(h) for h in heard[-windows:])

        return await self.hears(ok, within, since, ssrc)


@pytest.fixture
async def voice(world: World) -> AsyncIterator[VoiceWorld]:  # noqa: F811
    async with FakeYouTube(audio_seconds=AUDIO_S) as youtube:
        for song in SONGS:
            youtube.add_video(song.video_id, song.title, song.artists, song.duration_s)
        yield VoiceWorld(world, youtube)

"""The bot plays the host's track in their voice channel and follows them: asserted from the
audio the fake voice server decoded (track tone and time code of the fake YouTube)."""

from __future__ import annotations

import asyncio
import time

from tests.bot.test_gamenight import linked, say
from tests.voice.conftest import SONGS, HostPosition, Song, VoiceWorld

A, B = SONGS


async def test_voice_joins_plays_at_the_hosts_position_and_follows(voice: VoiceWorld) -> None:
    fake = voice.discord
    room = fake.voice.add_channel("Game Room")
    async with voice.run():
        host = await linked(voice.world, "hana")
        friend = fake.add_member("kim")
        await fake.voice.move(host, room)
        await fake.voice.move(friend, room)
        await say(voice.world, "gamenight start", host)
        await voice.play(host, A, position_ms=10_000)

        text = await say(voice.world, "gamenight voice join", host)
        assert f"<#{room.id}>" in text and "Playing" in text
        assert fake.voice.bot_channel() == room.id
        await voice.in_sync(since=0.0)
        board = voice.world.status_message()
        await fake.wait_until(lambda: "people" in fake.message(board.id).text, within=6)
        assert f"<#{room.id}> · 2 people" in fake.message(board.id).text

        # Half the volume: half the level, same music.
        loud = fake.voice.heard()[-1].level
        assert "50%" in await say(voice.world, "gamenight voice volume", host, percent=50)
        mark = time.monotonic()
        await asyncio.sleep(0.5)
        quieter = await voice.in_sync(since=mark)
        assert abs(quieter[-1].level / loud - 0.5) < 0.05

        # Skip to another track.
        mark = time.monotonic()
        await voice.play(host, B, position_ms=5_000)
        await voice.in_sync(since=mark)
        # Seek forward within it.
        mark = time.monotonic()
        await voice.play(host, B, position_ms=20_000)
        await voice.in_sync(since=mark)
        # Pause: the channel goes quiet.
        await voice.play(host, None)
        await asyncio.sleep(0.5)
        quiet_from = time.monotonic()
        await asyncio.sleep(1.0)
        assert not [p for p in fake.voice.packets(quiet_from) if not p.silence]
        # Resume (where the host is now).
        mark = time.monotonic()
        await voice.play(host, B, position_ms=21_000)
        await voice.in_sync(since=mark)
        assert fake.voice.gaps(mark + 0.5) == []

        text = await say(voice.world, "gamenight voice stop", host)
        assert "Left" in text
        await fake.wait_until(lambda: fake.voice.bot_channel() is None)


async def test_voice_auto_join_when_the_host_starts_in_a_voice_channel(voice: VoiceWorld) -> None:
    fake = voice.discord
    room = fake.voice.add_channel("Game Room")
    async with voice.run(voice_auto_join=True):
        host = await linked(voice.world, "hana")
        await fake.voice.move(host, room)
        await voice.play(host, A, position_ms=6_000)
        await say(voice.world, "gamenight start", host)
        await fake.wait_until(lambda: fake.voice.bot_channel() == room.id)
        await voice.in_sync(since=0.0)
        await say(voice.world, "gamenight stop", host)
        await fake.wait_until(lambda: fake.voice.bot_channel() is None)


async def test_without_a_presence_voice_follows_the_sync_engine(voice: VoiceWorld) -> None:
    """A linked host whose Spotify Discord does not show: voice follows the engine's reads."""
    fake, spotify = voice.discord, voice.world.spotify
    room = fake.voice.add_channel("Game Room")
    track = spotify.catalog[0]
    song = Song(track.id, "engineVideo", track.name, track.artists, track.duration_ms // 1000)
    voice.youtube.add_video(song.video_id, song.title, song.artists, song.duration_s)
    async with voice.run():
        host = await linked(voice.world, "hana")
        await fake.voice.move(host, room)
        spotify.player("hana-sp").load([track.id], position_ms=7_000)
        voice.host_state = HostPosition(song, 7_000, time.monotonic())
        await say(voice.world, "gamenight start", host)
        text = await say(voice.world, "gamenight voice join", host)
        assert "Display Spotify as your status" in text  # still worth switching on
        await voice.in_sync(since=0.0, within=15)

"""Voice refusals and faults: each gets a clear ephemeral answer, nothing loops."""

from __future__ import annotations

import asyncio
import time

import discord.voice_state
import pytest

from storage.records import CachedStream
from tests.bot.test_gamenight import linked, say
from tests.voice.conftest import MISSING, SONGS, VoiceWorld

A, B = SONGS


async def test_each_refusal_says_what_to_do(voice: VoiceWorld) -> None:
    fake = voice.discord
    room = fake.voice.add_channel("Game Room")
    mute = fake.voice.add_channel("No Speaking", bot_speak=False)
    closed = fake.voice.add_channel("Private", bot_connect=False)
    tiny = fake.voice.add_channel("Duo", user_limit=2)
    async with voice.run():
        host = await linked(voice.world, "hana")
        kim = fake.add_member("kim")
        lee = fake.add_member("lee")
        assert "no game night" in await say(voice.world, "gamenight voice join", host)
        await say(voice.world, "gamenight start", host)
        assert "Only the host" in await say(voice.world, "gamenight voice join", kim)
        assert "not in a voice channel" in await say(voice.world, "gamenight voice join", host)
        await fake.voice.move(host, closed)
        assert "Connect permission" in await say(voice.world, "gamenight voice join", host)
        await fake.voice.move(host, mute)
        assert "Speak permission" in await say(voice.world, "gamenight voice join", host)
        await fake.voice.move(host, tiny)
        await fake.voice.move(lee, tiny)
        assert "is full" in await say(voice.world, "gamenight voice join", host)
        assert "not in a voice channel here" in await say(voice.world, "gamenight voice stop", host)
        assert fake.voice.op4 == []  # every refusal came before asking Discord
        # No Spotify in the host's Discord status: joins, and says what to switch on.
        await fake.voice.move(host, room)
        text = await say(voice.world, "gamenight voice join", host)
        assert "Display Spotify as your status" in text
        # A track YouTube does not have: skipped, with a note on the status message.
        await voice.play(host, MISSING, position_ms=1_000)
        board = voice.world.status_message()
        await fake.wait_until(lambda: "No audio found" in fake.message(board.id).text, within=15)
        assert MISSING.title in fake.message(board.id).text
        # The next track plays.
        mark = time.monotonic()
        await voice.play(host, A, position_ms=3_000)
        await voice.in_sync(since=mark)
        # Ending the game night takes the bot out of voice.
        await say(voice.world, "gamenight stop", host)
        await fake.wait_until(lambda: fake.voice.bot_channel() is None)


async def test_reconnects_after_a_voice_drop_and_leaves_an_empty_channel(
    voice: VoiceWorld,
) -> None:
    fake = voice.discord
    room = fake.voice.add_channel("Game Room")
    async with voice.run(voice_empty_timeout_s=1.0):
        host = await linked(voice.world, "hana")
        await fake.voice.move(host, room)
        await say(voice.world, "gamenight start", host)
        await voice.play(host, A, position_ms=2_000)
        await say(voice.world, "gamenight voice join", host, volume=50)
        await voice.in_sync(since=0.0)

        await fake.voice.close_voice(4006)  # the voice server lost our session
        mark = time.monotonic()
        await fake.wait_until(lambda: len(fake.voice.live_connections()) == 1, within=10)
        assert len(fake.voice.connections) == 2
        await voice.in_sync(since=mark)

        await fake.voice.move(host, None)  # everyone left
        await fake.wait_until(lambda: fake.voice.bot_channel() is None, within=8)
        text_channel = fake.default_guild.text_channel_id
        await fake.wait_until(
            lambda: any("Everyone left" in m.text for m in fake.channel_messages(text_channel))
        )


async def test_a_voice_connection_without_dave_is_refused_plainly(
    voice: VoiceWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a client without DAVE support: IDENTIFY offers max_dave_protocol_version 0, and
    # Discord (the fake) closes the voice websocket with 4017.
    monkeypatch.setattr(discord.voice_state, "has_dave", False)
    fake = voice.discord
    room = fake.voice.add_channel("Game Room")
    async with voice.run():
        host = await linked(voice.world, "hana")
        await fake.voice.move(host, room)
        await say(voice.world, "gamenight start", host)
        started = time.monotonic()
        text = await say(voice.world, "gamenight voice join", host)
        assert "end-to-end encrypted voice (DAVE)" in text
        assert time.monotonic() - started < 5  # no 25 s of discord.py retries
        assert [c.close_code for c in fake.voice.connections] == [4017]
        await fake.wait_until(lambda: fake.voice.bot_channel() is None)


async def test_a_refused_stream_url_is_resolved_again_without_dropping_voice(
    voice: VoiceWorld,
) -> None:
    fake = voice.discord
    room = fake.voice.add_channel("Game Room")
    async with voice.run() as app:
        # A cached stream URL that has not expired but that YouTube refuses (403: the
        # signature no longer matches, as after YouTube rotates it or binds it to another IP).
        now = time.time()
        refused = (
            f"{voice.youtube.base_url}/videoplayback/{A.video_id}.wav?expire={int(now) + 3600}"
        )
        await app.services.storage.put_stream(
            CachedStream(
                A.track_id,
                voice.youtube.watch_url(A.video_id),
                refused + "&sig=0000000000000000",
                now + 3600,
                now,
                now,
            )
        )
        host = await linked(voice.world, "hana")
        await fake.voice.move(host, room)
        await say(voice.world, "gamenight start", host)
        await voice.play(host, A, position_ms=5_000)
        await say(voice.world, "gamenight voice join", host)
        await voice.in_sync(since=0.0, within=20)
        assert len(fake.voice.connections) == 1  # the same voice connection throughout
        stored = await app.services.storage.get_stream(A.track_id)
        assert stored is not None and "sig=0000000000000000" not in stored.stream_url


async def test_dropped_again_and_again_the_bot_stops_instead_of_looping(voice: VoiceWorld) -> None:
    fake = voice.discord
    room = fake.voice.add_channel("Game Room")
    async with voice.run():
        await voice.host_in_voice(room, A, position_ms=2_000)
        # Someone disconnects the bot from voice: it comes back once, and plays on.
        await fake.voice.move(fake.bot, None)
        await fake.wait_until(lambda: fake.voice.bot_channel() == room.id, within=10)
        mark = time.monotonic()
        await voice.in_sync(since=mark)
        # Dropped again, and again: it gives up, says so, and stays out.
        await fake.voice.close_voice(4006)
        await fake.wait_until(lambda: len(fake.voice.connections) == 3, within=10)
        await voice.in_sync(since=time.monotonic())
        await fake.voice.close_voice(4006)
        text_channel = fake.default_guild.text_channel_id
        await fake.wait_until(
            lambda: any("lost the voice connection" in m.text for m in fake.channel_messages(
                text_channel)), within=10)  # fmt: skip
        attempts = len(fake.voice.connections)
        await asyncio.sleep(3)
        assert len(fake.voice.connections) == attempts == 3
        assert fake.voice.bot_channel() is None

"""A moderator drags the bot to another voice channel: it plays on there, at the host's
position, and says where it is; it neither goes back nor retries in a loop."""

from __future__ import annotations

import asyncio
import time

from tests.bot.test_gamenight import linked, say
from tests.voice.conftest import SONGS, VoiceWorld

A, B = SONGS


async def test_moved_by_a_moderator_the_bot_plays_on_in_the_new_channel(
    voice: VoiceWorld,
) -> None:
    fake = voice.discord
    room = fake.voice.add_channel("Game Room")
    lounge = fake.voice.add_channel("Lounge")
    async with voice.run():
        host = await linked(voice.world, "hana")
        kim = fake.add_member("kim")
        await fake.voice.move(host, room)
        await fake.voice.move(kim, lounge)
        await say(voice.world, "gamenight start", host)
        await voice.play(host, A, position_ms=4_000)
        await say(voice.world, "gamenight voice join", host)
        await voice.in_sync(since=0.0)
        board = voice.world.status_message()

        # The new channel's voice server is slow to answer: discord.py's player waits for it
        # and then goes on where it was, behind the host; the bot catches up.
        fake.voice.ready_delay_s = 1.0
        await fake.voice.move(fake.bot, lounge)
        await fake.wait_until(lambda: len(fake.voice.connections) == 2, within=10)
        moved = fake.voice.connections[-1]
        await fake.wait_until(lambda: moved.ssrc != 0, within=10)  # READY sent: its ssrc
        # The new connection carries the host's track at the host's position.
        await voice.in_sync(since=moved.opened, ssrc=moved.ssrc)
        await fake.wait_until(
            lambda: f"<#{lounge.id}> · 1 person" in fake.message(board.id).text, within=6
        )
        # The host's next track plays in the new channel too.
        mark = time.monotonic()
        await voice.play(host, B, position_ms=8_000)
        await voice.in_sync(since=mark)
        # One move, one new connection: no way back to the old channel, no retries.
        await asyncio.sleep(2)
        assert fake.voice.bot_channel() == lounge.id
        assert len(fake.voice.connections) == 2
        assert fake.voice.connections[0].close_code == 4014

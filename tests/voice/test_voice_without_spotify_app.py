"""Only DISCORD_TOKEN (+ key): no Spotify app. Game nights follow the host's presence into
voice, the status message and the session snapshot the listen page reads; /link and following
on one's own Spotify say plainly that they need the Spotify app settings."""

from __future__ import annotations

import time

from core.listen import StreamStatus
from tests.bot.test_gamenight import say
from tests.voice.conftest import SONGS, VoiceWorld

A, B = SONGS


async def test_a_game_night_follows_presence_without_a_spotify_app(voice: VoiceWorld) -> None:
    fake = voice.discord
    room = fake.voice.add_channel("Game Room")
    host = fake.add_member("hana")
    kim = fake.add_member("kim")
    async with voice.run(spotify_client_id="", spotify_client_secret="") as app:
        assert "Spotify app settings" in await say(voice.world, "link", host)
        await fake.voice.move(host, room)
        await voice.play(host, A, position_ms=4_000)
        assert "started" in await say(voice.world, "gamenight start", host)
        assert "Spotify app settings" in await say(voice.world, "gamenight join", kim)
        await say(voice.world, "gamenight voice join", host)
        await voice.in_sync(since=0.0)

        mark = time.monotonic()
        await voice.play(host, B, position_ms=8_000)
        await voice.in_sync(since=mark)
        board = voice.world.status_message()
        await fake.wait_until(lambda: B.title in fake.message(board.id).text)
        session = await app.services.storage.get_session(fake.default_guild.id)
        assert session is not None and session.snapshot is not None
        assert (session.snapshot.track_id, session.snapshot.is_playing) == (B.track_id, True)
        assert abs(session.snapshot.position_ms - 8_000) < 1_000

        # The listen page's feed follows too: the presence's track, its audio resolved.
        listen = app.services.listen.listen
        token = await listen.token_for(fake.default_guild.id)
        async with listen.subscribe(token) as page:
            deadline = time.monotonic() + 10
            while not (page.view.track and page.view.stream.status is StreamStatus.READY):
                assert time.monotonic() < deadline, page.view
                await page.next(0.5)
            assert page.view.track.name == B.title
            assert page.view.snapshot is not None
            assert page.view.snapshot.track_id == B.track_id
    assert voice.world.spotify.log == []  # not one Spotify call

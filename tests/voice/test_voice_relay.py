"""Voice reads YouTube the way yt-dlp extracted from it (source address, proxy), through our
relay: the fake YouTube plays a stream URL only to the address and User-Agent that extracted
it, and answers 403 to anyone else (ffmpeg fetching it itself would connect from 127.0.0.1).
Asserted from what the fake voice server decoded."""

from __future__ import annotations

import time

from tests.fakes.youtube import BOT_SIDE_ADDRESS
from tests.voice.conftest import SONGS, VoiceWorld
from tests.web.socks import Socks5

A, B = SONGS


async def test_voice_plays_a_stream_bound_to_the_extractors_source_address(
    voice: VoiceWorld,
) -> None:
    fake, youtube = voice.discord, voice.youtube
    assert youtube.ip_binding and youtube.ua_binding
    room = fake.voice.add_channel("Game Room")
    async with voice.run() as app:
        assert voice.world.settings.youtube_source_address == BOT_SIDE_ADDRESS
        await voice.host_in_voice(room, A, position_ms=4_000)
        stored = await app.services.storage.get_stream(A.track_id)
        assert stored is not None and f"ip={BOT_SIDE_ADDRESS}" in stored.stream_url
        assert youtube.counts.stream_fetches > 0
        assert youtube.counts.stream_refusals == 0


async def test_voice_follows_youtube_proxy(voice: VoiceWorld) -> None:
    fake, youtube = voice.discord, voice.youtube
    room = fake.voice.add_channel("Game Room")
    async with Socks5() as proxy, voice.run(youtube_proxy=proxy.url) as app:
        host = await voice.host_in_voice(room, B, position_ms=6_000)
        stored = await app.services.storage.get_stream(B.track_id)
        # Extracted through the proxy, so bound to its exit address (which only the proxy
        # connects from): every fetch went through it, none was refused.
        assert stored is not None and f"ip={proxy.source}" in stored.stream_url
        fetches = youtube.counts.stream_fetches
        mark = time.monotonic()
        await voice.play(host, B, position_ms=20_000)  # a seek: ffmpeg fetches again
        await voice.in_sync(since=mark)
        assert youtube.counts.stream_fetches > fetches
        assert youtube.counts.stream_refusals == 0
        assert proxy.connections > 0


async def test_a_url_youtube_revokes_mid_session_is_extracted_again_in_the_same_session(
    voice: VoiceWorld,
) -> None:
    fake, youtube = voice.discord, voice.youtube
    room = fake.voice.add_channel("Game Room")
    async with voice.run():
        host = await voice.host_in_voice(room, A, position_ms=3_000)
        pages = youtube.counts.page_fetches
        # YouTube refuses every URL handed out so far (before their expiry); the host seeks,
        # so ffmpeg asks for the audio again: the relay is refused, re-extracts once, plays.
        youtube.revoke_streams()
        mark = time.monotonic()
        await voice.play(host, A, position_ms=18_000)
        await voice.in_sync(since=mark)
        assert youtube.counts.stream_refusals >= 1
        assert youtube.counts.page_fetches == pages + 1  # one re-extraction, no new search
        assert len(fake.voice.connections) == 1  # the same voice session throughout
        assert fake.voice.bot_channel() == room.id

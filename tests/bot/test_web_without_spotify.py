"""`python -m bot web` without the Spotify app keys (optional since #16): it serves what needs no
Spotify lookup and says plainly what does, with no traceback and no ERROR line."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from pathlib import Path

import aiohttp
import pytest

from bot.__main__ import running
from tests.bot.conftest import VIDEO_ID, World
from tests.bot.test_process import python_m_bot
from tests.conftest import free_port
from tests.fakes.youtube import FakeYouTube
from tests.pwa import TRACK_ID, track_body

UNCACHED = "1111111111111111111111"
CACHED = "2222222222222222222222"


async def test_web_only_without_spotify_serves_songs_and_refuses_lookups_plainly(
    world: World, youtube: FakeYouTube, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(
        world.settings,
        discord_token="",
        spotify_client_id="",
        spotify_client_secret="",
        youtube_base_url=youtube.base_url,
    )
    base = f"http://127.0.0.1:{settings.http_port}"
    caplog.set_level(logging.INFO)
    async with (
        running(settings, gateway=False, ytmusic_client_factory=youtube.ytmusic_client) as app,
        aiohttp.ClientSession() as http,
    ):
        assert "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are not set" in caplog.text
        # /song: the client's title and artists find the song; a cached id is served again.
        searched = []
        for _ in range(2):
            async with http.post(f"{base}/song", json=track_body()) as r:
                assert r.status == 200, await r.text()
                relay_url = (await r.text()).strip('"')
            searched.append(youtube.counts.searches)
        assert searched[0] > 0 and searched[1] == searched[0]  # the second: from the cache
        async with http.get(relay_url) as audio:  # the relay
            assert audio.status == 200
            assert await audio.read() == youtube.audio(VIDEO_ID)
        # An id cached under its bare id (the bot process resolved it from a presence).
        key = relay_url.split("/v1/relay/")[1].split("?")[0]
        matched = await app.services.storage.get_stream(key)
        assert matched is not None and key != TRACK_ID  # kept for that claim only
        await app.services.storage.put_stream(dataclasses.replace(matched, track_id=CACHED))
        async with http.get(f"{base}/v1/tracks/{CACHED}") as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["video_url"].endswith(VIDEO_ID)
        # A bare id never seen before needs Spotify's metadata: a plain 503 that says why.
        async with http.get(f"{base}/v1/tracks/{UNCACHED}") as r:
            assert r.status == 503
            assert "no Spotify app configured" in await r.text()
        for path in ("/healthcheck", "/metrics", "/listen/assets/listen.js"):
            async with http.get(base + path) as r:
                assert r.status == 200, path
        async with http.get(f"{base}/listen/not-a-token") as r:
            assert r.status == 404  # the "game night is over" page, not an error
        # Nobody could have begun a link here: Spotify's callback is a plain page, no call.
        async with http.get(f"{base}/spotify/callback?code=c&state=unknown-state") as r:
            assert 400 <= r.status < 500, await r.text()
    assert world.spotify.log == []  # not one Spotify call
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text


async def test_python_m_bot_web_starts_with_no_spotify_or_discord_settings(
    tmp_path: Path,
) -> None:
    port = free_port()
    (tmp_path / ".env").write_text(
        f"HTTP_PORT={port}\nSTORAGE_URL=sqlite:///{tmp_path / 'gamenight.db'}\n"
    )
    proc = await python_m_bot(tmp_path, "web")
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):  # the first start imports spotDL and yt-dlp: a few seconds
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthcheck") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert proc.returncode is None, "python -m bot web stopped"
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("python -m bot web never answered /healthcheck")
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = stderr.decode()
    assert proc.returncode == 0, text
    assert "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are not set" in text
    assert "Traceback" not in text and " ERROR " not in text

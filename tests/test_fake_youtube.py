"""The fake YouTube behaves like the parts of YouTube the resolver relies on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from ytmusicapi.exceptions import YTMusicServerError

from core.youtube import Extraction, YouTube
from tests.fakes.youtube import FakeYouTube


@pytest.fixture
async def fake() -> AsyncIterator[FakeYouTube]:
    async with FakeYouTube() as fake:
        fake.add_video("abcdefghijk", "Some Song", ["Some Artist"], 200)
        fake.add_video("uploadOnly1", "Some Song", ["Some Artist"], 201, kind="upload")
        yield fake


async def extract(fake: FakeYouTube) -> Extraction:
    return await asyncio.to_thread(
        YouTube(base_url=fake.base_url).extract, "https://www.youtube.com/watch?v=abcdefghijk"
    )


async def stream_url(fake: FakeYouTube) -> str:
    return (await extract(fake)).stream_url


async def test_ytdlp_extracts_an_expiring_stream_url(fake: FakeYouTube) -> None:
    fake.stream_lifetime = 1234
    url = await stream_url(fake)
    expire = int(parse_qs(urlsplit(url).query)["expire"][0])
    assert url.startswith(f"{fake.base_url}/videoplayback/abcdefghijk.wav?")
    assert expire - asyncio.get_running_loop().time() > 1230 or expire > 0
    assert fake.counts.page_fetches == 1


async def test_stream_honours_range_and_refuses_expired_or_forged_urls(fake: FakeYouTube) -> None:
    extraction = await extract(fake)
    url = extraction.stream_url
    whole = fake.audio("abcdefghijk")
    # Fetched as yt-dlp's format says (its User-Agent), like the relay does.
    async with aiohttp.ClientSession(headers=dict(extraction.http_headers)) as http:
        async with http.get(url, headers={"Range": "bytes=4-11"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes 4-11/{len(whole)}"
            assert await r.read() == whole[4:12]
        async with http.get(url, headers={"Range": "bytes=-10"}) as r:
            assert r.status == 206
            assert await r.read() == whole[-10:]
        async with http.get(url, headers={"Range": f"bytes={len(whole)}-"}) as r:
            assert r.status == 416
        async with http.get(url.replace("sig=", "sig=0")) as r:
            assert r.status == 403
        fake.stream_lifetime = -10
        expired = await stream_url(fake)
        async with http.get(expired) as r:
            assert r.status == 403
    assert fake.counts.stream_fetches == 5


async def test_stream_urls_play_only_for_the_user_agent_they_were_made_for(
    fake: FakeYouTube,
) -> None:
    extraction = await extract(fake)
    assert dict(extraction.http_headers).get("User-Agent")  # yt-dlp's format headers are kept
    assert "Cookie" not in dict(extraction.http_headers)
    async with aiohttp.ClientSession() as http:  # aiohttp's own User-Agent
        async with http.get(extraction.stream_url) as r:
            assert r.status == 403
            assert "User-Agent" in await r.text()
        async with http.get(extraction.stream_url, headers=dict(extraction.http_headers)) as r:
            assert r.status == 200
        fake.ua_binding = False
        async with http.get(extraction.stream_url) as r:
            assert r.status == 200


async def test_searches_and_failure_controls(fake: FakeYouTube) -> None:
    client = fake.ytmusic_client()
    songs = await asyncio.to_thread(client.search, "some artist - some song", filter="songs")
    assert [s["videoId"] for s in songs] == ["abcdefghijk"]
    assert songs[0]["duration"] == "3:20"
    youtube = YouTube(base_url=fake.base_url)
    found = await asyncio.to_thread(youtube.search, "some artist - some song")
    assert [(e.video_url, e.duration_s) for e in found] == [
        ("https://www.youtube.com/watch?v=abcdefghijk", 200.0),
        ("https://www.youtube.com/watch?v=uploadOnly1", 201.0),
    ]
    assert (fake.counts.ytmusic_searches, fake.counts.rss_searches) == (1, 1)

    fake.search_status = 500
    with pytest.raises(YTMusicServerError, match="500"):
        await asyncio.to_thread(client.search, "some song")
    fake.remove_video("abcdefghijk")
    fake.search_status = 200
    async with aiohttp.ClientSession() as http, http.get(fake.watch_url("abcdefghijk")) as r:
        assert r.status == 404

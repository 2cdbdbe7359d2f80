"""spotDL's real matching path: the real ytmusicapi parses the fake YouTube Music's InnerTube
answers (no stand-in), in German as spotDL asks for it, and in English."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator

import pytest

from core.matcher import SpotdlFinder
from core.tracks import TrackInfo
from core.youtube import YouTube
from tests.fakes.youtube import FakeYouTube

TRACK = TrackInfo(
    id="4PTG3Z6ehGkBFwjybzWkR8",
    name="Never Gonna Give You Up",
    artists=("Rick Astley",),
    album="Whenever You Need Somebody",
    duration_ms=213_573,
    isrc="GBARL9300135",
)
SONGS_FILTER = "EgWKAQIIAWoMEA4QChADEAQQCRAF"  # what ytmusicapi sends for filter="songs"


@pytest.fixture
async def fake() -> AsyncIterator[FakeYouTube]:
    async with FakeYouTube() as fake:
        fake.add_video(
            "dQw4w9WgXcQ",
            "Never Gonna Give You Up",
            ["Rick Astley"],
            213,
            album="Whenever You Need Somebody",
            isrc="GBARL9300135",
        )
        # A video of the song, and a decoy with the wrong length: neither should win.
        fake.add_video("rickVideo01", "Never Gonna Give You Up", ["Rick Astley"], 214, kind="video")
        fake.add_video("rickLive001", "Never Gonna Give You Up (Live)", ["Rick Astley"], 290)
        yield fake


def search_answer(fake: FakeYouTube, hl: str, query: str) -> str:
    body = {"query": query, "params": SONGS_FILTER, "context": {"client": {"hl": hl}}}
    request = urllib.request.Request(
        f"{fake.base_url}/ytm/youtubei/v1/search",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


async def find(fake: FakeYouTube) -> tuple[str, str]:
    youtube = YouTube(base_url=fake.base_url)
    finder = SpotdlFinder(
        youtube, loop=asyncio.get_running_loop(), ytmusic_client_factory=fake.ytmusic_client
    )
    try:
        match = await asyncio.to_thread(finder.find, TRACK)
    finally:
        youtube.close()
    return match.video_url, match.source


async def test_a_german_answer_still_finds_the_song(fake: FakeYouTube) -> None:
    answer = await asyncio.to_thread(
        search_answer, fake, "de", "Rick Astley - Never Gonna Give You Up"
    )
    assert '"Titel"' in answer  # the shelf as YouTube Music titles it in German
    assert "Wiedergaben" in answer  # the play count ytmusicapi takes for an artist

    video_url, source = await find(fake)
    assert video_url == "https://music.youtube.com/watch?v=dQw4w9WgXcQ"
    assert source == "spotdl"  # found by spotDL over YouTube Music, not the yt-dlp fallback
    assert fake.counts.ytmusic_searches >= 1
    assert fake.counts.rss_searches == 0


async def test_an_english_answer_finds_it_too(fake: FakeYouTube) -> None:
    fake.ytmusic_language = "en"
    answer = await asyncio.to_thread(
        search_answer, fake, "de", "Rick Astley - Never Gonna Give You Up"
    )
    assert '"Songs"' in answer
    assert "Titel" not in answer
    assert await find(fake) == ("https://music.youtube.com/watch?v=dQw4w9WgXcQ", "spotdl")


async def test_the_real_parser_reads_title_artists_album_and_duration(fake: FakeYouTube) -> None:
    client = fake.ytmusic_client()
    (song,) = await asyncio.to_thread(client.search, "GBARL9300135", filter="songs")
    assert song["videoId"] == "dQw4w9WgXcQ"
    assert song["title"] == "Never Gonna Give You Up"
    assert song["album"]["name"] == "Whenever You Need Somebody"
    assert song["duration_seconds"] == 213
    assert song["category"] == "Titel"
    # ytmusicapi's German quirk: the play count lands among the artists (spotDL drops it).
    names = [a["name"] for a in song["artists"]]
    assert names[0] == "Rick Astley"
    assert any("Wiedergaben" in n for n in names)
    videos = await asyncio.to_thread(client.search, "Never Gonna Give You Up", filter="videos")
    assert [v["videoId"] for v in videos] == ["rickVideo01"]

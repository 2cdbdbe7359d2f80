"""Fake YouTube: a real HTTP server on 127.0.0.1 that the REAL spotDL and yt-dlp talk to.

What it serves (all on one random port, `fake.base_url`):

- `GET /watch?v=ID` — an HTML page with `<audio src=...>`: yt-dlp's html5/generic extractor
  turns it into a direct stream URL. Counted in `counts.page_fetches`.
- `GET /videoplayback/ID.wav?expire=T&sig=S` — real generated audio (a few seconds of WAV that
  says which video and which position it is: see `track_audio`). Like googlevideo: the URL
  carries `expire=` (Unix seconds, `stream_lifetime` after the page was fetched), a bad
  signature or a past expiry answers 403, and `Range` is honoured (206 + Content-Range).
  Counted in `counts.stream_fetches`.
- `GET /ytmusic/search?query=Q&filter=songs|videos` — JSON in the shape `ytmusicapi.YTMusic
  .search()` returns after parsing. spotDL does not talk HTTP to it directly: give spotDL the
  client from `fake.ytmusic_client()` (it does a blocking GET here, so the search runs as real
  I/O in a worker thread) and spotDL's real matching code ranks the canned candidates.
  Counted in `counts.ytmusic_searches`.
- `GET /results?search_query=Q` — an RSS feed of matching videos (title "Artists - Name",
  `itunes:duration`, link `https://www.youtube.com/watch?v=ID`), which yt-dlp's generic
  extractor reads as a flat playlist: the stand-in for `ytsearchN:` when
  `core.youtube.YouTube(base_url=fake.base_url)`. Counted in `counts.rss_searches`.

The catalog (`add_video`) holds what a search can find. A query matches a video when it equals
the video's ISRC, or (for text queries) when a word of the video's name occurs in the query;
`filter="songs"` returns only `kind="song"` entries, `filter="videos"` only `kind="video"`, no
filter both; `kind="upload"` videos are found only by the RSS (yt-dlp) search. Decoys are
ordinary catalog entries with a wrong duration or artist.

Control API (plain attributes, change them at any time, also from another thread):

    fake = FakeYouTube()           # then `await fake.start()` / `await fake.aclose()`,
                                   # or `async with FakeYouTube() as fake:`
    fake.add_video(video_id, name, artists, duration_s, kind="song", album=None, isrc=None)
    fake.remove_video(video_id)    # page answers 404 afterwards ("video unavailable")
    fake.stream_lifetime = 6 * 3600  # seconds until a handed-out stream URL expires
    fake.search_delay = 0.0        # seconds every search (YTM and RSS) takes
    fake.page_delay = 0.0          # seconds every watch page takes (yt-dlp extraction)
    fake.search_status = 200       # e.g. 500 to make searches fail
    fake.page_status = 200         # e.g. 500 to make every extraction fail
    fake.audio_seconds = 3         # length of generated audio; set before the first fetch
                                   # (the listen-page browser tests play 60 s)
    fake.counts                    # Counts(searches, ytmusic_searches, rss_searches,
                                   #        page_fetches, stream_fetches)
    fake.counts.reset()
    fake.watch_url(video_id)       # the local page URL; fake.stream_path(video_id) its audio path
    fake.ytmusic_client()          # a YTMusic stand-in for core.matcher.SpotdlFinder

Everything is generated in code; nothing binary is checked in.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import re
import threading
import time
import urllib.parse
import urllib.request
import wave
from dataclasses import dataclass, field
from html import escape
from typing import Any, Self
from xml.sax.saxutils import escape as xml_escape

import numpy as np
from aiohttp import web

SAMPLE_RATE = 16_000
AUDIO_SECONDS = 3
_SIGNING_KEY = b"fake-youtube"

# The audio is a code anyone can read back from what a listener hears (tests/fakes/
# discord_voice.py decodes it from the Opus the bot sends): two sine tones at once,
#  - the track tone, 220-880 Hz, fixed per video id (`track_frequency`), says WHICH video;
#  - the time code, a rising tone from POSITION_BASE_HZ at POSITION_HZ_PER_S, says WHERE: at
#    media position t seconds it is at POSITION_BASE_HZ + POSITION_HZ_PER_S * (t mod
#    POSITION_WRAP_S). 40 Hz per second reads to ~10 ms from a 200 ms window; it wraps every
#    150 s (below the 8 kHz Nyquist limit of 16 kHz audio).
POSITION_BASE_HZ = 1000.0
POSITION_HZ_PER_S = 40.0
POSITION_WRAP_S = 150.0
TRACK_HZ_RANGE = (220.0, 880.0)


def track_frequency(video_id: str) -> float:
    """The track tone of a video: a distinct pitch per id, so a test can tell which it got."""
    return 220.0 + int(hashlib.sha256(video_id.encode()).hexdigest()[:4], 16) % 660


def position_frequency(position_s: float) -> float:
    """The time-code tone at media position `position_s`."""
    return POSITION_BASE_HZ + POSITION_HZ_PER_S * (position_s % POSITION_WRAP_S)


def _wav(samples: np.ndarray[Any, np.dtype[np.float64]], rate: int) -> bytes:
    pcm = np.clip(samples * 32767, -32768, 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def tone_wav(frequency: float, seconds: float = AUDIO_SECONDS, rate: int = SAMPLE_RATE) -> bytes:
    """A mono 16-bit PCM WAV of a sine tone."""
    t = np.arange(int(seconds * rate)) / rate
    return _wav(0.25 * np.sin(2 * np.pi * frequency * t), rate)


def track_audio(video_id: str, seconds: float = AUDIO_SECONDS, rate: int = SAMPLE_RATE) -> bytes:
    """The video's WAV: its track tone plus the time code (see POSITION_* above)."""
    t = np.arange(int(seconds * rate)) / rate
    local = t % POSITION_WRAP_S  # the chirp restarts at each wrap; its phase is continuous within
    chirp = 2 * np.pi * (POSITION_BASE_HZ * local + POSITION_HZ_PER_S * local**2 / 2)
    track = 2 * np.pi * track_frequency(video_id) * t
    return _wav(0.25 * np.sin(track) + 0.25 * np.sin(chirp), rate)


@dataclass
class Video:
    video_id: str
    name: str
    artists: tuple[str, ...]
    duration_s: int
    # "song": a YouTube Music song (spotDL trusts these: verified); "video": a YouTube Music
    # video result; "upload": a plain YouTube upload only the yt-dlp search finds.
    kind: str = "song"
    album: str | None = None
    isrc: str | None = None

    def ytmusic_json(self) -> dict[str, Any]:
        minutes, seconds = divmod(self.duration_s, 60)
        return {
            "resultType": self.kind,
            "videoId": self.video_id,
            "title": self.name,
            "artists": [{"name": a, "id": None} for a in self.artists],
            "album": {"name": self.album, "id": None} if self.album else None,
            "duration": f"{minutes}:{seconds:02d}",
            "duration_seconds": self.duration_s,
            "isExplicit": False,
        }


@dataclass
class Counts:
    ytmusic_searches: int = 0
    rss_searches: int = 0
    page_fetches: int = 0
    stream_fetches: int = 0

    @property
    def searches(self) -> int:
        return self.ytmusic_searches + self.rss_searches

    def reset(self) -> None:
        self.ytmusic_searches = self.rss_searches = self.page_fetches = self.stream_fetches = 0


_WORD = re.compile(r"[\w']+")


@dataclass
class FakeYouTube:
    stream_lifetime: float = 6 * 3600
    search_delay: float = 0.0
    page_delay: float = 0.0
    search_status: int = 200
    page_status: int = 200
    audio_seconds: float = AUDIO_SECONDS
    counts: Counts = field(default_factory=Counts)
    videos: dict[str, Video] = field(default_factory=dict)
    base_url: str = ""
    _runner: web.AppRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _audio: dict[str, bytes] = field(default_factory=dict)

    # --- lifetime ----------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/watch", self._watch)
        app.router.add_get("/videoplayback/{name}", self._stream)
        app.router.add_get("/ytmusic/search", self._ytmusic_search)
        app.router.add_get("/results", self._rss_search)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert server is not None
        port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- catalog -----------------------------------------------------------------------------

    def add_video(
        self,
        video_id: str,
        name: str,
        artists: tuple[str, ...] | list[str],
        duration_s: int,
        *,
        kind: str = "song",
        album: str | None = None,
        isrc: str | None = None,
    ) -> Video:
        video = Video(video_id, name, tuple(artists), duration_s, kind, album, isrc)
        with self._lock:
            self.videos[video_id] = video
        return video

    def remove_video(self, video_id: str) -> None:
        with self._lock:
            self.videos.pop(video_id, None)

    def watch_url(self, video_id: str) -> str:
        return f"{self.base_url}/watch?v={video_id}"

    def stream_path(self, video_id: str) -> str:
        return f"/videoplayback/{video_id}.wav"

    def audio(self, video_id: str) -> bytes:
        with self._lock:
            if video_id not in self._audio:
                self._audio[video_id] = track_audio(video_id, self.audio_seconds)
            return self._audio[video_id]

    def ytmusic_client(self) -> FakeYTMusicClient:
        return FakeYTMusicClient(self.base_url)

    def matching(self, query: str, kind: str | None = None) -> list[Video]:
        words = {w.lower() for w in _WORD.findall(query)}
        with self._lock:
            videos = list(self.videos.values())
        found = []
        for v in videos:
            if kind is not None and v.kind != kind:
                continue
            isrc_hit = bool(v.isrc) and v.isrc.lower() == query.strip().lower()
            if isrc_hit or any(w.lower() in words for w in _WORD.findall(v.name)):
                found.append(v)
        return found

    # --- handlers ----------------------------------------------------------------------------

    def _sign(self, video_id: str, expire: int) -> str:
        return hmac.new(_SIGNING_KEY, f"{video_id}:{expire}".encode(), "sha256").hexdigest()[:16]

    async def _watch(self, request: web.Request) -> web.Response:
        self.counts.page_fetches += 1
        if self.page_delay:
            await asyncio.sleep(self.page_delay)
        if self.page_status != 200:
            return web.Response(status=self.page_status, text="upstream error")
        video_id = request.query.get("v", "")
        video = self.videos.get(video_id)
        if video is None:
            return web.Response(status=404, text="Video unavailable")
        expire = int(time.time() + self.stream_lifetime)
        # Like googlevideo, every page view hands out a different URL (here: a fetch number).
        src = f"{self.stream_path(video_id)}?expire={expire}&id={video_id}"
        src += f"&rn={self.counts.page_fetches}"
        src += f"&sig={self._sign(video_id, expire)}"
        title = escape(f"{', '.join(video.artists)} - {video.name}")
        html = (
            f"<!doctype html><html><head><title>{title}</title></head><body>"
            f'<h1>{title}</h1><audio controls src="{escape(src)}"></audio></body></html>'
        )
        return web.Response(text=html, content_type="text/html")

    async def _stream(self, request: web.Request) -> web.Response:
        self.counts.stream_fetches += 1
        name = request.match_info["name"]
        video_id = name.removesuffix(".wav")
        try:
            expire = int(request.query.get("expire", ""))
        except ValueError:
            return web.Response(status=403, text="missing expire")
        sig = request.query.get("sig", "")
        if not hmac.compare_digest(sig, self._sign(video_id, expire)):
            return web.Response(status=403, text="bad signature")
        if expire < time.time():
            return web.Response(status=403, text="expired")
        body = self.audio(video_id)
        headers = {"Accept-Ranges": "bytes"}
        range_header = request.headers.get("Range")
        if range_header:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if m is None or (not m[1] and not m[2]):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(body)}"})
            if m[1]:
                start = int(m[1])
                end = min(int(m[2]), len(body) - 1) if m[2] else len(body) - 1
            else:  # suffix range: the last N bytes
                start, end = max(len(body) - int(m[2]), 0), len(body) - 1
            if start >= len(body) or start > end:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(body)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
            return web.Response(
                status=206, body=body[start : end + 1], content_type="audio/wav", headers=headers
            )
        return web.Response(body=body, content_type="audio/wav", headers=headers)

    async def _ytmusic_search(self, request: web.Request) -> web.Response:
        self.counts.ytmusic_searches += 1
        if self.search_delay:
            await asyncio.sleep(self.search_delay)
        if self.search_status != 200:
            return web.Response(status=self.search_status, text="search failed")
        kind = {"songs": "song", "videos": "video"}.get(request.query.get("filter", ""))
        found = [
            v
            for v in self.matching(request.query.get("query", ""), kind)
            if v.kind != "upload"  # plain uploads are not in YouTube Music's index
        ]
        return web.Response(
            text=json.dumps([v.ytmusic_json() for v in found]), content_type="application/json"
        )

    async def _rss_search(self, request: web.Request) -> web.Response:
        self.counts.rss_searches += 1
        if self.search_delay:
            await asyncio.sleep(self.search_delay)
        if self.search_status != 200:
            return web.Response(status=self.search_status, text="search failed")
        query = request.query.get("search_query", "")
        items = []
        for v in self.matching(query):
            minutes, seconds = divmod(v.duration_s, 60)
            title = xml_escape(f"{', '.join(v.artists)} - {v.name}")
            items.append(
                f"<item><title>{title}</title>"
                f"<link>https://www.youtube.com/watch?v={v.video_id}</link>"
                f"<itunes:duration>{minutes}:{seconds:02d}</itunes:duration></item>"
            )
        rss = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
            f"<channel><title>Search: {xml_escape(query)}</title>{''.join(items)}</channel></rss>"
        )
        return web.Response(text=rss, content_type="application/rss+xml")


class FakeYTMusicClient:
    """Stands in for `ytmusicapi.YTMusic` inside spotDL: `search()` asks the fake over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def search(
        self,
        query: str,
        filter: str | None = None,  # ytmusicapi's parameter name
        scope: str | None = None,
        limit: int = 20,
        ignore_spelling: bool = False,
    ) -> list[dict[str, Any]]:
        params = {"query": query, "filter": filter or "", "limit": str(limit)}
        url = f"{self.base_url}/ytmusic/search?{urllib.parse.urlencode(params)}"
        # Blocking on purpose: spotDL calls this from a worker thread, like the real client.
        with urllib.request.urlopen(url, timeout=30) as response:
            result: list[dict[str, Any]] = json.loads(response.read())
        return result

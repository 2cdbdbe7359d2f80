"""Fake YouTube: a real HTTP server on 127.0.0.1 that the REAL spotDL and yt-dlp talk to.

What it serves (all on one random port, `fake.base_url`):

- `GET /watch?v=ID` — an HTML page with `<audio src=...>`: yt-dlp's html5/generic extractor
  turns it into a direct stream URL. Counted in `counts.page_fetches`.
- `GET /videoplayback/ID.wav?expire=T&ip=A&sig=S` — real generated audio (a few seconds of WAV
  that says which video and which position it is: see `track_audio`). Like googlevideo: the
  URL carries `expire=` (Unix seconds, `stream_lifetime` after the page was fetched) and `ip=`,
  the address that fetched the page (signed); a bad signature, a past expiry, or a fetch from
  any other address answers 403 (IP binding, yt-dlp #12940/#17456: a browser elsewhere cannot
  play it; on 127.0.0.1 the bot's side connects from another loopback address,
  `BOT_SIDE_ADDRESS`). `Range` is honoured (206 + Content-Range). Counted in
  `counts.stream_fetches`; refusals in `counts.stream_refusals`.
- YouTube Music for the REAL ytmusicapi (no stand-in): `GET /ytm/` (the start page ytmusicapi
  reads its visitor id from) and `POST /ytm/youtubei/v1/search` answering InnerTube's raw
  response shape (tabbedSearchResultsRenderer -> musicShelfRenderer ->
  musicResponsiveListItemRenderer, flex columns of runs, play-button overlay with videoId and
  musicVideoType), in the language the client asks for (`context.client.hl`): spotDL asks for
  German, so shelves are titled "Titel"/"Videos" and song rows carry a play count
  ("185.711\xa0Wiedergaben") that ytmusicapi mistakes for an artist (spotDL #2779;
  ytmusicapi #1006). `fake.ytmusic_client()` is a real `ytmusicapi.YTMusic(language="de")`
  whose requests to https://music.youtube.com are sent here. Counted in
  `counts.ytmusic_searches`.
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
    fake.ip_binding = True         # stream URLs play only for the address that got the page
    fake.ua_binding = True         # ... and only for the User-Agent that got the page
    fake.refuse_streams = 0        # answer 403 to this many more valid stream fetches (YouTube
                                   # revoking a URL before its expiry)
    fake.revoke_streams()          # 403 for every stream URL handed out so far (URLs from
                                   # later page fetches play): order-independent revocation
    fake.search_delay = 0.0        # seconds every search (YTM and RSS) takes
    fake.page_delay = 0.0          # seconds every watch page takes (yt-dlp extraction)
    fake.search_status = 200       # e.g. 500 to make searches fail
    fake.page_status = 200         # e.g. 500 to make every extraction fail
    fake.audio_seconds = 3         # length of generated audio; set before the first fetch
                                   # (the listen-page browser tests play 60 s)
    fake.counts                    # Counts(searches, ytmusic_searches, rss_searches,
                                   #        page_fetches, stream_fetches, stream_refusals)
    fake.counts.reset()
    fake.watch_url(video_id)       # the local page URL; fake.stream_path(video_id) its audio path
    fake.ytmusic_client()          # a real ytmusicapi.YTMusic pointed at this fake
    fake.ytmusic_language = None   # answer in this language whatever the client asks ("en",
                                   # "de"); None: in the client's own (`hl`)

Everything is generated in code; nothing binary is checked in.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import re
import threading
import time
import wave
from dataclasses import dataclass, field
from html import escape
from typing import Any, Self
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import requests
from aiohttp import web

_YTM_DOMAIN = "https://music.youtube.com"
SAMPLE_RATE = 16_000  # the time code reaches 7 kHz (below)
AUDIO_SECONDS = 3
_SIGNING_KEY = b"fake-youtube"
# The loopback address the bot's side (yt-dlp and the relay) connects from in tests, so the
# fake can tell it from a browser on 127.0.0.1 (Linux routes all of 127.0.0.0/8 to loopback).
BOT_SIDE_ADDRESS = "127.0.0.2"

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


@dataclass
class Counts:
    ytmusic_searches: int = 0
    rss_searches: int = 0
    page_fetches: int = 0
    stream_fetches: int = 0
    stream_refusals: int = 0

    @property
    def searches(self) -> int:
        return self.ytmusic_searches + self.rss_searches

    def reset(self) -> None:
        self.ytmusic_searches = self.rss_searches = self.page_fetches = self.stream_fetches = 0
        self.stream_refusals = 0


_WORD = re.compile(r"[\w']+")


@dataclass
class FakeYouTube:
    stream_lifetime: float = 6 * 3600
    search_delay: float = 0.0
    page_delay: float = 0.0
    search_status: int = 200
    page_status: int = 200
    audio_seconds: float = AUDIO_SECONDS
    ip_binding: bool = True
    # Stream URLs play only for the User-Agent that fetched the page: googlevideo answers 403 to
    # a URL fetched as another client than the one it was made for (yt-dlp #17456: a desktop
    # --user-agent over an android_vr format; youtube-dl #32905), so the relay must send the
    # format's `http_headers`, not aiohttp's own User-Agent.
    ua_binding: bool = True
    refuse_streams: int = 0
    revoked_through: int = 0  # stream URLs from page fetches numbered up to this are refused
    ytmusic_language: str | None = None
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
        app.router.add_get("/ytm/", self._ytmusic_home)
        app.router.add_post("/ytm/youtubei/v1/search", self._ytmusic_search)
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

    def revoke_streams(self) -> None:
        self.revoked_through = self.counts.page_fetches

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

    def ytmusic_client(self) -> Any:
        """The real ytmusicapi client, as spotDL makes it, talking to this fake."""
        from ytmusicapi import YTMusic  # noqa: PLC0415 - only tests that search need it

        return YTMusic(language="de", requests_session=_ToFake(self.base_url + "/ytm"))

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

    def _sign(self, video_id: str, expire: int, ip: str, ua: str = "") -> str:
        message = f"{video_id}:{expire}:{ip}:{ua}".encode()
        return hmac.new(_SIGNING_KEY, message, "sha256").hexdigest()[:16]

    @staticmethod
    def _ua_tag(request: web.Request) -> str:
        return hashlib.sha256(request.headers.get("User-Agent", "").encode()).hexdigest()[:8]

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
        ip = request.remote or ""
        src = f"{self.stream_path(video_id)}?expire={expire}&id={video_id}&ip={ip}"
        src += f"&rn={self.counts.page_fetches}"
        ua = self._ua_tag(request)
        src += f"&ua={ua}&sig={self._sign(video_id, expire, ip, ua)}"
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
        ip = request.query.get("ip", "")
        ua = request.query.get("ua", "")
        if not hmac.compare_digest(sig.encode(), self._sign(video_id, expire, ip, ua).encode()):
            return self._refuse("bad signature")
        if expire < time.time():
            return self._refuse("expired")
        if self.ip_binding and request.remote != ip:
            return self._refuse(f"bound to {ip}, fetched from {request.remote}")
        if self.ua_binding and self._ua_tag(request) != ua:
            return self._refuse("made for another client (User-Agent)")
        if self.refuse_streams > 0:
            self.refuse_streams -= 1
            return self._refuse("revoked")
        if int(request.query.get("rn", "0") or 0) <= self.revoked_through:
            return self._refuse("revoked")
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

    def _refuse(self, why: str) -> web.Response:
        self.counts.stream_refusals += 1
        return web.Response(status=403, text=why)

    async def _ytmusic_home(self, request: web.Request) -> web.Response:
        # ytmusicapi reads VISITOR_DATA out of the page's ytcfg.set({...}) call.
        html = '<html><script>ytcfg.set({"VISITOR_DATA": "CgtGYWtlVmlzaXRvcg%3D%3D"});</script>'
        return web.Response(text=html, content_type="text/html")

    async def _ytmusic_search(self, request: web.Request) -> web.Response:
        self.counts.ytmusic_searches += 1
        if self.search_delay:
            await asyncio.sleep(self.search_delay)
        if self.search_status != 200:
            error = {"error": {"code": self.search_status, "message": "search failed"}}
            return web.json_response(error, status=self.search_status)
        body = await request.json()
        hl = self.ytmusic_language or body.get("context", {}).get("client", {}).get("hl", "en")
        words = _YTM_WORDS.get(hl, _YTM_WORDS["en"])
        # ytmusicapi's filter params: "EgWKAQ" + "II" (songs) or "IQ" (videos) + spelling flags.
        params = str(body.get("params") or "")
        kind = (
            {"II": "song", "IQ": "video"}.get(params[6:8]) if params.startswith("EgWKAQ") else None
        )
        found = [
            v
            for v in self.matching(str(body.get("query", "")), kind)
            if v.kind != "upload"  # plain uploads are not in YouTube Music's index
        ]
        shelves = []
        for shelf_kind in ("song", "video"):
            rows = [_ytm_row(v, words) for v in found if v.kind == shelf_kind]
            if rows:
                title = {"runs": [{"text": words["songs" if shelf_kind == "song" else "videos"]}]}
                shelves.append({"musicShelfRenderer": {"title": title, "contents": rows}})
        if not shelves:  # YouTube Music's "no results" answer
            shelves = [{"itemSectionRenderer": {"contents": [{"messageRenderer": {}}]}}]
        tab = {"tabRenderer": {"content": {"sectionListRenderer": {"contents": shelves}}}}
        return web.json_response({"contents": {"tabbedSearchResultsRenderer": {"tabs": [tab]}}})

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


# What YouTube Music writes in its answers, per interface language.
_YTM_WORDS = {
    "en": {"songs": "Songs", "videos": "Videos", "plays": "{n} plays", "views": "{n} views"},
    # German: a non-breaking space before the unit, which ytmusicapi's number pattern misses.
    "de": {
        "songs": "Titel",
        "videos": "Videos",
        "plays": "{n}\xa0Wiedergaben",
        "views": "{n}\xa0Aufrufe",
    },
}
_DOT = {"text": " • "}


def _ytm_row(video: Video, words: dict[str, str]) -> dict[str, Any]:
    """One musicResponsiveListItemRenderer row, as InnerTube sends it for a filtered search."""
    minutes, seconds = divmod(video.duration_s, 60)
    plays = f"{185_711 + len(video.video_id):,}".replace(",", ".")
    artists: list[dict[str, Any]] = []
    for n, artist in enumerate(video.artists):
        if n:
            artists.append({"text": " & "})
        channel = "UC" + hashlib.sha256(artist.encode()).hexdigest()[:22]
        artists.append(
            {"text": artist, "navigationEndpoint": {"browseEndpoint": {"browseId": channel}}}
        )
    # Column 1: artists, album (songs), length; column 2: the play or view count, which
    # ytmusicapi appends to column 1's runs (and, in German, reads as one more artist).
    details = [*artists, _DOT]
    if video.kind == "song" and video.album:
        album_id = "MPREb_" + hashlib.sha256(video.album.encode()).hexdigest()[:11]
        album = {"browseEndpoint": {"browseId": album_id}}
        details += [{"text": video.album, "navigationEndpoint": album}, _DOT]
    details.append({"text": f"{minutes}:{seconds:02d}"})
    count = [{"text": words["plays" if video.kind == "song" else "views"].format(n=plays)}]
    video_type = "MUSIC_VIDEO_TYPE_ATV" if video.kind == "song" else "MUSIC_VIDEO_TYPE_OMV"
    watch = {
        "videoId": video.video_id,
        "watchEndpointMusicSupportedConfigs": {
            "watchEndpointMusicConfig": {"musicVideoType": video_type}
        },
    }
    title_run = {"text": video.name, "navigationEndpoint": {"watchEndpoint": watch}}
    column = "musicResponsiveListItemFlexColumnRenderer"
    return {
        "musicResponsiveListItemRenderer": {
            "flexColumns": [
                {column: {"text": {"runs": [title_run]}}},
                {column: {"text": {"runs": details}}},
                {column: {"text": {"runs": count}}},
            ],
            "overlay": {
                "musicItemThumbnailOverlayRenderer": {
                    "content": {
                        "musicPlayButtonRenderer": {
                            "playNavigationEndpoint": {"watchEndpoint": watch}
                        }
                    }
                }
            },
        }
    }


class _ToFake(requests.Session):
    """A requests session that sends ytmusicapi's https://music.youtube.com requests to the fake
    (the client is otherwise untouched: real request building, real parsing)."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self._base = base

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        target = url.decode() if isinstance(url, bytes) else url
        if target.startswith(_YTM_DOMAIN):
            target = self._base + (target[len(_YTM_DOMAIN) :] or "/")
        # ytmusicapi labels its plain JSON body "Content-Encoding: gzip"; YouTube ignores that,
        # aiohttp's server would try to gunzip it. Drop the label, nothing else.
        headers = {k: v for k, v in (kwargs.pop("headers", None) or {}).items()}
        headers = {k: v for k, v in headers.items() if k.lower() != "content-encoding"}
        kwargs.setdefault("timeout", 30)
        return super().request(method, target, *args, headers=headers, **kwargs)

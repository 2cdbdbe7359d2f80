"""yt-dlp behind a small, blocking adapter: extract a stream URL, search videos.

Every method blocks (network I/O plus parsing) and must run in the resolver's thread pool.
One `YoutubeDL` is reused per worker thread: building one costs far more than an extraction,
and a `YoutubeDL` keeps per-call state, so threads do not share one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

from yt_dlp import YoutubeDL
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import YoutubeDLError

from core.errors import ExtractionFailed, ResolveError

log = logging.getLogger(__name__)

_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "music.youtube.com", "m.youtube.com"})


@dataclass(frozen=True)
class Extraction:
    """A direct, expiring audio URL for a video."""

    stream_url: str
    title: str
    duration_s: float


@dataclass(frozen=True)
class SearchEntry:
    """One flat search result (nothing was extracted for it yet)."""

    video_url: str
    title: str
    duration_s: float
    channel: str


def stream_expiry(stream_url: str, now: float, fallback_ttl: float) -> float:
    """When a stream URL stops working: its `expire` query parameter, else now + fallback_ttl.

    yt-dlp does not report the expiry; googlevideo URLs carry it as `expire=<unix seconds>`.
    """
    values = parse_qs(urlsplit(stream_url).query).get("expire")
    if values:
        try:
            return float(values[0])
        except ValueError:
            log.debug("unparsable expire parameter in a stream URL")
    return now + fallback_ttl


class YouTube:
    """Extracts stream URLs and searches videos with yt-dlp.

    `base_url` points it at a YouTube stand-in (the test fake, the sandbox): YouTube watch URLs
    are then fetched from `{base_url}/watch?v=ID`, and searches read the RSS feed at
    `{base_url}/results?search_query=Q` instead of `ytsearchN:`. Video URLs handed out stay
    canonical YouTube URLs either way, so cached data does not depend on the stand-in.
    """

    def __init__(self, base_url: str | None = None, socket_timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self._options: dict[str, Any] = {
            "format": "bestaudio/best",
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "skip_download": True,
            "noplaylist": True,
            "socket_timeout": socket_timeout,
            "logger": _QuietLogger(),
        }
        self._local = threading.local()
        # Every instance made, whatever thread made it: yt-dlp's requests handler keeps pooled
        # keep-alive sockets that only YoutubeDL.close() releases (else the GC finds them open).
        self._made: list[YoutubeDL] = []
        self._made_lock = threading.Lock()

    def _ydl(self, **extra: Any) -> YoutubeDL:
        key = tuple(sorted(extra.items()))
        cache: dict[tuple[tuple[str, Any], ...], YoutubeDL] = self._local.__dict__.setdefault(
            "ydls", {}
        )
        if key not in cache:
            cache[key] = ydl = YoutubeDL({**self._options, **extra})
            with self._made_lock:
                self._made.append(ydl)
        return cache[key]

    def close(self) -> None:
        """Close every YoutubeDL made; call once no worker thread uses this object."""
        with self._made_lock:
            made, self._made = self._made, []
        for ydl in made:
            ydl.close()

    def warm_up(self) -> None:
        """Blocking: load yt-dlp's extractor classes and build this thread's YoutubeDL.

        The first extraction otherwise spends ~0.3 s importing and compiling 1,700 extractor
        classes in a worker thread while holding the GIL for long stretches, which stalls the
        event loop; do it once at start-up instead.
        """
        from yt_dlp.extractor import gen_extractor_classes  # noqa: PLC0415 - only to warm up

        probe = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
        for extractor in gen_extractor_classes():
            extractor.suitable(probe)
        self._ydl()
        self._ydl(extract_flat="in_playlist", noplaylist=False)

    def fetch_url(self, video_url: str) -> str:
        """The URL yt-dlp actually fetches for a canonical video URL."""
        if self.base_url is None:
            return video_url
        parts = urlsplit(video_url)
        if parts.hostname in _YOUTUBE_HOSTS and parts.path == "/watch":
            video_id = parse_qs(parts.query).get("v", [""])[0]
            return f"{self.base_url}/watch?v={quote_plus(video_id)}"
        return video_url

    def extract(self, video_url: str) -> Extraction:
        """Blocking: the best audio stream URL of a video. Raises ExtractionFailed."""
        started = time.perf_counter()
        try:
            info = self._ydl().extract_info(self.fetch_url(video_url), download=False)
        except YoutubeDLError as exc:
            _close_responses(exc)
            raise ExtractionFailed("Could not get an audio stream for the matched video.") from exc
        info = info or {}
        if info.get("_type") == "playlist":
            entries = [e for e in info.get("entries") or () if e]
            info = entries[0] if entries else {}
        url = info.get("url")
        if not isinstance(url, str) or not url:
            raise ExtractionFailed("The matched video has no playable audio stream.")
        log.debug("extracted %s in %.0f ms", video_url, (time.perf_counter() - started) * 1000)
        return Extraction(
            stream_url=url,
            title=str(info.get("title") or ""),
            duration_s=float(info.get("duration") or 0.0),
        )

    def view_count(self, video_url: str) -> int:
        """Blocking: the video's view count (0 when unknown). Raises ExtractionFailed."""
        try:
            info = self._ydl().extract_info(self.fetch_url(video_url), download=False)
        except YoutubeDLError as exc:
            _close_responses(exc)
            raise ExtractionFailed("Could not read the video's page.") from exc
        return int((info or {}).get("view_count") or 0)

    def search(self, query: str, limit: int = 10) -> list[SearchEntry]:
        """Blocking: flat search results (no extraction). Raises ResolveError when it fails."""
        if self.base_url is None:
            target = f"ytsearch{limit}:{query}"
        else:
            target = f"{self.base_url}/results?search_query={quote_plus(query)}"
        try:
            info = self._ydl(extract_flat="in_playlist", noplaylist=False).extract_info(
                target, download=False
            )
        except YoutubeDLError as exc:
            _close_responses(exc)
            raise ResolveError("YouTube search failed; try again later.") from exc
        entries: list[SearchEntry] = []
        for entry in filter(None, (info or {}).get("entries") or ()):
            url = entry.get("url") or entry.get("webpage_url")
            if not url:
                continue
            if not str(url).startswith("http") and entry.get("id"):
                url = f"https://www.youtube.com/watch?v={entry['id']}"
            entries.append(
                SearchEntry(
                    video_url=str(url),
                    title=str(entry.get("title") or ""),
                    duration_s=float(entry.get("duration") or 0.0),
                    channel=str(entry.get("channel") or entry.get("uploader") or ""),
                )
            )
        return entries[:limit]


class _QuietLogger:
    """yt-dlp prints to stderr unless given a logger; route it to ours at debug level."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        log.debug("yt-dlp error: %s", msg)


def _close_responses(error: BaseException) -> None:
    """Close the HTTP responses yt-dlp keeps inside its errors.

    yt-dlp's HTTPError holds the open response (and its socket) and its errors end up in
    reference cycles, so without this every failed page leaves a socket open until the
    cyclic garbage collector happens to run.
    """
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, HTTPError):
            current.close()
        exc_info = getattr(current, "exc_info", None)  # DownloadError / ExtractorError
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            pending.append(exc_info[1])
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None)]

"""yt-dlp behind a small, blocking adapter: extract a stream URL, search videos.

Every method blocks (network I/O plus parsing) and must run in the resolver's thread pool.
One `YoutubeDL` is reused per worker thread: building one costs far more than an extraction,
and a `YoutubeDL` keeps per-call state, so threads do not share one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

from yt_dlp import YoutubeDL
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import YoutubeDLError

from core.errors import ExtractionFailed, ResolveError
from core.ytargs import parse_extractor_args

__all__ = [
    "Extraction",
    "SearchEntry",
    "YouTube",
    "YouTubeConfig",
    "YtDlpLog",
    "cause_of",
    "parse_extractor_args",
    "stream_expiry",
]

log = logging.getLogger(__name__)

_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "music.youtube.com", "m.youtube.com"})


@dataclass(frozen=True)
class Extraction:
    """A direct, expiring audio URL for a video."""

    stream_url: str
    title: str
    duration_s: float
    # yt-dlp's `http_headers` for the chosen format (User-Agent, Accept...): the stream URL is
    # fetched with exactly these (googlevideo refuses one fetched as another client; yt-dlp
    # #17456). Cookies are left out: they are the operator's secret and not kept in the cache.
    http_headers: tuple[tuple[str, str], ...] = ()


# Never kept with a cached stream: credentials yt-dlp may put into a format's headers.
_SECRET_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})


def _format_headers(info: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    headers = info.get("http_headers") or {}
    return tuple(
        (str(name), str(value))
        for name, value in headers.items()
        if str(name).lower() not in _SECRET_HEADERS
    )


@dataclass(frozen=True)
class SearchEntry:
    """One flat search result (nothing was extracted for it yet)."""

    video_url: str
    title: str
    duration_s: float
    channel: str


@dataclass(frozen=True)
class YouTubeConfig:
    """How yt-dlp reaches YouTube from a server (README, "Running on a server").

    - `cookies_file`: a Netscape cookies.txt of a (throwaway) YouTube account; the usual cure
      for "Sign in to confirm you're not a bot" on datacenter addresses (yt-dlp #12475).
    - `proxy`: every YouTube request (pages, and the relay's audio fetches: a stream URL is
      bound to the address that extracted it) goes through it.
    - `source_address`: the local IP address to connect from (a host with several addresses).
      The relay connects from the same one, for the same reason as the proxy.
    - `extractor_args`: yt-dlp's `--extractor-args`, e.g. {"youtube": {"player_client":
      ["default", "mweb"]}}.
    - `pot_provider_url`: the bgutil PO-token provider's HTTP server; the plugin is installed
      and asks it for tokens only when this is set.
    """

    base_url: str | None = None  # a YouTube stand-in (the test fake, the sandbox)
    socket_timeout: float = 15.0
    cookies_file: str | None = None
    proxy: str | None = None
    source_address: str | None = None
    extractor_args: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    pot_provider_url: str | None = None
    js_runtime_path: str | None = None  # deno's binary; None: yt-dlp looks in the venv, PATH

    def ydl_options(self) -> dict[str, Any]:
        """The YoutubeDL parameters these settings amount to."""
        options: dict[str, Any] = {"socket_timeout": self.socket_timeout}
        if self.cookies_file:
            options["cookiefile"] = self.cookies_file
        if self.proxy:
            options["proxy"] = self.proxy
        if self.source_address:
            options["source_address"] = self.source_address
        if self.js_runtime_path:
            options["js_runtimes"] = {"deno": {"path": self.js_runtime_path}}
        args: dict[str, dict[str, list[str]]] = {
            ie.lower(): {k: list(v) for k, v in values.items()}
            for ie, values in self.extractor_args.items()
        }
        if self.pot_provider_url:
            args.setdefault("youtubepot-bgutilhttp", {})["base_url"] = [self.pot_provider_url]
        else:
            # Without a provider address the installed bgutil plugin would still try its default
            # (127.0.0.1:4416) and warn on every extraction that needs a token: fetch none.
            args.setdefault("youtube", {}).setdefault("fetch_pot", ["never"])
        if args:
            options["extractor_args"] = args
        return options


def private_copy(cookies_file: str) -> str:
    """A copy of the operator's cookies file that only this process uses.

    yt-dlp writes its cookie jar back to the file at YoutubeDL.close(): on the operator's own
    file that fails when it is read-only (a mounted secret) and, when it works, rewrites it
    under the operator, from several processes at once. The copy is private (mode 0600).
    """
    handle, path = tempfile.mkstemp(prefix=f"gamenight-cookies-{os.getpid()}-", suffix=".txt")
    with os.fdopen(handle, "wb") as copy, open(cookies_file, "rb") as source:
        shutil.copyfileobj(source, copy)
    return path


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

    def __init__(
        self,
        base_url: str | None = None,
        socket_timeout: float = 15.0,
        *,
        config: YouTubeConfig | None = None,
    ) -> None:
        config = config or YouTubeConfig(base_url=base_url, socket_timeout=socket_timeout)
        self.config = config
        self.base_url = config.base_url.rstrip("/") if config.base_url else None
        self._options: dict[str, Any] = {
            "format": "bestaudio/best",
            "quiet": True,
            "noprogress": True,
            "skip_download": True,
            "noplaylist": True,
            "logger": YtDlpLog(),
            **config.ydl_options(),
        }
        self._cookies: str | None = None
        if config.cookies_file:
            self._cookies = private_copy(config.cookies_file)
            self._options["cookiefile"] = self._cookies
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
        if self._cookies is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._cookies)
            self._cookies = None

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

    def js_runtime(self) -> str | None:
        """Blocking: "deno 2.9.8 at /path" for the JS runtime yt-dlp would use, else None.

        Without one, yt-dlp falls back to very few YouTube player clients (yt-dlp #15012).
        """
        runtimes: Mapping[str, Any] = self._ydl()._js_runtimes
        for name, runtime in runtimes.items():
            info = getattr(runtime, "info", None)
            if info is not None and info.supported:
                return f"{name} {info.version} at {info.path}"
        return None

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
            http_headers=_format_headers(info),
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


# yt-dlp's messages that name why YouTube refused; the operator sees the cause, not a riddle.
_CAUSES = (
    (
        "confirm you",
        "YouTube's bot check refused this server (set YOUTUBE_COOKIES_FILE, "
        "YOUTUBE_PROXY or YOUTUBE_POT_PROVIDER_URL)",
    ),
    ("js runtime", "no JavaScript runtime for YouTube (install the `deno` package)"),
    ("javascript runtime", "no JavaScript runtime for YouTube (install the `deno` package)"),
    # bgutil's plugin pings its provider; without YOUTUBE_POT_PROVIDER_URL it tries 127.0.0.1:4416.
    ("/ping", "the PO-token provider does not answer (check YOUTUBE_POT_PROVIDER_URL)"),
    ("po token", "YouTube wants a PO token (set YOUTUBE_POT_PROVIDER_URL)"),
    ("po_token", "YouTube wants a PO token (set YOUTUBE_POT_PROVIDER_URL)"),
    # YouTube's session rate limit (~300 videos/hour per guest session or account) reads
    # "Video unavailable. This content isn't available, try again later." (yt-dlp #11426,
    # #12958): checked before "unavailable", it is not the video's fault. Both apostrophes.
    ("available, try again later", "YouTube is rate-limiting this server (about an hour)"),
    ("rate-limited by youtube", "YouTube is rate-limiting this server (about an hour)"),
    ("unavailable", "the video is unavailable"),
    ("private video", "the video is unavailable"),
    ("http error 404", "the video is unavailable"),
    ("http error 403", "YouTube refused the request (HTTP 403)"),
    ("http error 429", "YouTube is rate-limiting this server (HTTP 429)"),
)
# Warnings that say nothing about YouTube's health (the stand-in is read by the generic one).
_NOISE = ("falling back on generic information extractor",)


def cause_of(message: str) -> str:
    """A short, plain cause for a yt-dlp warning or error message."""
    lowered = message.lower()
    for needle, cause in _CAUSES:
        if needle in lowered:
            return cause
    return "yt-dlp reported a problem"


class YtDlpLog:
    """The logger handed to YoutubeDL: its warnings and errors reach our log at WARNING, with
    the cause first (bot check, no JS runtime, PO token, unavailable video); chatter is DEBUG.

    Never ERROR: YouTube refusing one video is not a fault of ours (it is a client's track).
    """

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        if any(noise in msg.lower() for noise in _NOISE):
            log.debug("yt-dlp: %s", msg)
            return
        log.warning("yt-dlp warning: %s: %s", cause_of(msg), msg)

    def error(self, msg: str) -> None:
        log.warning("yt-dlp error: %s: %s", cause_of(msg), msg)


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

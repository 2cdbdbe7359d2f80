"""Finding the YouTube video for a Spotify track: spotDL's matching, then a yt-dlp search.

spotDL (4.6) searches YouTube Music (ytmusicapi, in German) by ISRC first, then by
"artists - title", and ranks the candidates by artist, title, album and duration. Only its
search is used, never its download path: `Downloader.search(song)` returns a URL. The
candidates spotDL saw are recorded so the chosen one's duration can be checked against our
own, stricter tolerance. When spotDL finds nothing acceptable, a yt-dlp search runs and
spotDL's ranking scores its results.

Everything here blocks and must run in the resolver's thread pool.
"""

from __future__ import annotations

import asyncio
import locale
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import NoMatch, ResolveError, SearchFailed
from core.tracks import TrackInfo
from core.youtube import YouTube

if TYPE_CHECKING:
    from spotdl.types.result import Result
    from spotdl.types.song import Song

# spotDL is imported where it is first used (building a finder, a Song): its import takes about
# 1.4 s, which a process that never resolves (keygen, a settings report, --help) need not pay.

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoMatch:
    video_url: str
    title: str
    duration_s: float
    score: float
    source: str  # "spotdl" or "ytsearch"


def song_for(track: TrackInfo) -> Song:
    """A spotDL Song built from what we already know: no Spotify call."""
    from spotdl.types.song import Song  # noqa: PLC0415 - a slow import (above)

    artists = list(track.artists) or [""]
    return Song.from_missing_data(
        name=track.name,
        artists=artists,
        artist=artists[0],
        album_name=track.album or None,
        duration=round(track.duration_ms / 1000),
        song_id=track.id,
        url=f"https://open.spotify.com/track/{track.id}",
        isrc=track.isrc or None,
    )


class SpotdlFinder:
    """Blocking: `find(track) -> VideoMatch`; raises NoMatch or SearchFailed.

    `ytmusic_client_factory` replaces how spotDL makes its YouTube Music client (tests and the
    sandbox give a real ytmusicapi client pointed at the fake YouTube).
    """

    def __init__(
        self,
        youtube: YouTube,
        *,
        loop: asyncio.AbstractEventLoop,
        duration_tolerance_s: float = 7.0,
        fallback_limit: int = 10,
        ytmusic_client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._youtube = youtube
        self._tolerance = duration_tolerance_s
        self._fallback_limit = fallback_limit
        self._seen = threading.local()
        from spotdl.download.downloader import Downloader  # noqa: PLC0415 - a slow import (above)

        saved_locale = locale.setlocale(locale.LC_ALL)
        try:
            # loop= keeps spotDL from creating and installing an event loop of its own; ffmpeg
            # is never run (search only) but spotDL refuses to start without one unless told.
            self._downloader = Downloader(
                {
                    "ffmpeg": "unused",
                    "lyrics_providers": [],
                    "simple_tui": True,
                    "audio_providers": ["youtube-music"],
                },
                loop=loop,
            )
        finally:
            # ytmusicapi's YTMusic() calls setlocale(LC_ALL) process-wide; undo that.
            locale.setlocale(locale.LC_ALL, saved_locale)
        for provider in self._downloader.audio_providers:
            self._instrument(provider, ytmusic_client_factory)

    def _instrument(self, provider: Any, client_factory: Callable[[], Any] | None) -> None:
        create_client = client_factory or provider._create_client

        def create_client_keeping_locale() -> Any:
            # spotDL builds a new client after empty answers; keep its setlocale contained.
            saved = locale.setlocale(locale.LC_ALL)
            try:
                return create_client()
            finally:
                locale.setlocale(locale.LC_ALL, saved)

        if client_factory is not None:
            provider.client = create_client_keeping_locale()
        provider._create_client = create_client_keeping_locale
        get_results = provider.get_results

        def recording_get_results(search_term: str, *args: Any, **kwargs: Any) -> list[Result]:
            results: list[Result] = get_results(search_term, *args, **kwargs)
            seen: list[Result] | None = getattr(self._seen, "results", None)
            if seen is not None:
                seen.extend(results)
            return results

        provider.get_results = recording_get_results
        # spotDL breaks near-ties by view count, extracting each candidate: go through our
        # adapter so the same YouTube (or its stand-in) answers.
        provider.get_views = self._views

    def _views(self, video_url: str) -> int:
        try:
            return self._youtube.view_count(video_url)
        except ResolveError:
            return 0

    def warm_up(self) -> None:
        """Blocking: run spotDL's ranking once offline so its lazy set-up is not paid later."""
        from spotdl.types.result import Result  # noqa: PLC0415 - a slow import (above)
        from spotdl.utils.matching import order_results  # noqa: PLC0415 - a slow import (above)

        song = song_for(TrackInfo("0" * 22, "Warm Up", ("Nobody",), "", 60_000))
        sample = Result(
            source="warm-up",
            url="https://www.youtube.com/watch?v=warmup",
            verified=False,
            name="Nobody - Warm Up",
            duration=60,
            author="Nobody",
            result_id="warmup",
        )
        order_results([sample], song)

    def find(self, track: TrackInfo) -> VideoMatch:
        song = song_for(track)
        failed = False
        try:
            match = self._spotdl(song)
        except ResolveError:
            failed = True
            match = None
        if match is not None:
            return match
        try:
            match = self._ytsearch(song)
        except ResolveError:
            failed = True
            match = None
        if match is not None:
            return match
        if failed:
            raise SearchFailed("YouTube search is not answering; try again later.")
        raise NoMatch(f"No YouTube video matches {track.title_line}.")

    def _duration_ok(self, song: Song, duration_s: float) -> bool:
        return not song.duration or abs(duration_s - song.duration) <= self._tolerance

    def _spotdl(self, song: Song) -> VideoMatch | None:
        self._seen.results = []
        try:
            url = self._downloader.search(song)
        except LookupError:
            log.debug("spotDL found nothing for %s", song.song_id)
            return None
        except Exception as exc:  # spotDL and ytmusicapi raise anything from requests up
            log.warning("spotDL search failed for %s: %s", song.song_id, exc)
            raise ResolveError("YouTube Music search failed") from exc
        finally:
            seen: list[Result] = self._seen.results
            del self._seen.results
        chosen = next((r for r in seen if r.url == url), None)
        if chosen is None:  # cannot happen with the YTM provider; be safe rather than guess
            log.warning("spotDL returned %s that none of its searches listed", url)
            return None
        if not self._duration_ok(song, chosen.duration):
            log.info(
                "rejecting spotDL's match %s for %s: %.0f s long, track is %s s",
                url,
                song.song_id,
                chosen.duration,
                song.duration,
            )
            return None
        from spotdl.utils.matching import order_results  # noqa: PLC0415 - a slow import (above)

        # An ISRC hit with a single verified result is returned unranked: it is exact.
        score = order_results([chosen], song).get(chosen, 100.0)
        return VideoMatch(url, chosen.name, chosen.duration, round(score, 2), "spotdl")

    def _ytsearch(self, song: Song) -> VideoMatch | None:
        from spotdl.types.result import Result  # noqa: PLC0415 - a slow import (above)
        from spotdl.utils.matching import order_results  # noqa: PLC0415 - a slow import (above)

        query = f"{', '.join(a for a in song.artists if a)} - {song.name}".strip(" -")
        entries = self._youtube.search(query, self._fallback_limit)
        candidates = [
            Result(
                source="youtube",
                url=e.video_url,
                verified=False,
                name=e.title,
                duration=e.duration_s,
                author=e.channel,
                result_id=e.video_url,
                artists=(e.channel,) if e.channel else None,
                search_query=query,
            )
            for e in entries
            if self._duration_ok(song, e.duration_s)
        ]
        ranked = order_results(candidates, song)
        if not ranked:
            log.info("yt-dlp search found no acceptable match for %s", song.song_id)
            return None
        best, score = max(ranked.items(), key=lambda item: item[1])
        return VideoMatch(best.url, best.name, best.duration, round(score, 2), "ytsearch")

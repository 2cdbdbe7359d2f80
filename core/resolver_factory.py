"""The production Resolver: spotDL + yt-dlp behind it (or both pointed at a YouTube stand-in)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from core.matcher import SpotdlFinder
from core.resolver import Resolver, TrackLookup
from core.resolver_config import ResolverConfig
from core.youtube import YouTube, YouTubeConfig
from storage.base import LeaseStore, StreamCache

__all__ = ["NoYouTubeMusic", "build_resolver"]


class NoYouTubeMusic:
    """A `ytmusicapi.YTMusic` stand-in for spotDL that finds nothing and makes no request."""

    def search(self, query: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []


def build_resolver(
    cache: StreamCache,
    track_lookup: TrackLookup,
    *,
    config: ResolverConfig | None = None,
    youtube_base_url: str | None = None,
    ytmusic_client_factory: Callable[[], Any] | None = None,
    duration_tolerance_s: float = 7.0,
    youtube_config: YouTubeConfig | None = None,
    leases: LeaseStore | None = None,
) -> Resolver:
    """A Resolver over spotDL + yt-dlp. Call from the running loop; then `await start()`.

    `youtube_base_url` and `ytmusic_client_factory` point both libraries at a YouTube stand-in
    (tests/fakes/youtube.py: `base_url` and `ytmusic_client`); leave them None in production.
    With a stand-in but no YouTube Music client, spotDL's search finds nothing (rather than
    reaching the real YouTube Music) and the yt-dlp search against the stand-in does the work.
    """
    if youtube_config is None:
        youtube_config = YouTubeConfig(base_url=youtube_base_url)
    if youtube_config.base_url is not None and ytmusic_client_factory is None:
        ytmusic_client_factory = NoYouTubeMusic
    youtube = YouTube(config=youtube_config)
    finder = SpotdlFinder(
        youtube,
        loop=asyncio.get_running_loop(),
        duration_tolerance_s=duration_tolerance_s,
        ytmusic_client_factory=ytmusic_client_factory,
    )
    return Resolver(cache, finder, youtube, track_lookup, config=config, leases=leases)

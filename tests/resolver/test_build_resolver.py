"""build_resolver, as the composition root calls it."""

from __future__ import annotations

from core.resolver_factory import build_resolver
from storage.base import Storage
from tests.fakes.youtube import FakeYouTube
from tests.resolver.conftest import AHA, Lookup


async def test_youtube_stand_in_without_a_music_client_never_leaves_loopback(
    fake_youtube: FakeYouTube, lookup: Lookup, cache: Storage
) -> None:
    """YOUTUBE_BASE_URL alone (the sandbox): spotDL finds nothing, the yt-dlp search works.

    The autouse network guard fails this test if spotDL tried the real YouTube Music.
    """
    resolver = build_resolver(cache, lookup, youtube_base_url=fake_youtube.base_url)
    try:
        await resolver.start()
        entry = await resolver.resolve_id(AHA.id)
    finally:
        await resolver.aclose()
    assert entry.video_url.endswith("watch?v=ahaUpload01")
    assert fake_youtube.counts.ytmusic_searches == 0
    assert fake_youtube.counts.rss_searches >= 1
    assert lookup.calls == [AHA.id]

"""An entry from `python -m bot import-songs` (a video URL, no stream URL) through the resolver:
re-extracted on first use, never searched again."""

from __future__ import annotations

from core.resolver import Resolver
from storage.base import StreamCache
from storage.records import CachedStream
from tests.fakes.youtube import FakeYouTube
from tests.resolver.conftest import BOTH, RICK, Lookup


@BOTH
async def test_an_imported_video_match_is_extracted_without_a_search(
    resolver: Resolver, fake_youtube: FakeYouTube, cache: StreamCache, lookup: Lookup
) -> None:
    imported = CachedStream(
        track_id=RICK.id,
        video_url="https://www.youtube.com/watch?v=dQw4w9WgXcQ",  # import-songs' canonical form
        stream_url="",
        expires_at=0.0,
        resolved_at=1_700_000_000.0,
        last_access=1_700_000_000.0,
    )
    await cache.put_stream(imported)
    entry = await resolver.resolve_id(RICK.id)
    assert entry.stream_url.startswith(fake_youtube.base_url + "/videoplayback/dQw4w9WgXcQ.wav")
    assert entry.video_url == imported.video_url
    assert fake_youtube.counts.searches == 0
    assert fake_youtube.counts.page_fetches == 1
    assert lookup.calls == []  # no Spotify metadata needed either
    assert await cache.get_stream(RICK.id) == entry

"""yt-dlp's open HTTP responses are closed by us, not left for the garbage collector.

With warnings as errors, a socket the GC finds open fails whichever test happens to be
running when a collection starts: these tests pin such leaks to the code that makes them.
"""

from __future__ import annotations

import gc
import warnings

import pytest

from core.errors import ExtractionFailed
from core.resolver import Resolver
from tests.fakes.youtube import FakeYouTube
from tests.resolver.conftest import AHA, QUEEN, RICK


def open_sockets_found_by_gc() -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


async def test_a_failed_page_leaves_no_socket_open(
    resolver: Resolver, fake_youtube: FakeYouTube
) -> None:
    gc.collect()
    fake_youtube.page_status = 500
    with pytest.raises(ExtractionFailed):
        await resolver.resolve(QUEEN)
    assert open_sockets_found_by_gc() == []


async def test_aclose_leaves_no_socket_open(resolver: Resolver, fake_youtube: FakeYouTube) -> None:
    await resolver.resolve(RICK)  # spotDL match + yt-dlp extraction
    await resolver.resolve(AHA)  # the yt-dlp search fallback too
    assert fake_youtube.counts.page_fetches >= 2
    await resolver.aclose()
    assert open_sockets_found_by_gc() == []

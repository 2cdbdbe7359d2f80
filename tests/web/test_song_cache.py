"""The parsed-body cache of POST /song keeps only small bodies (its memory stays bounded)."""

from __future__ import annotations

import json

import pytest

from bot.web import songs
from tests.pwa import track_body
from tests.web.conftest import Api

pytestmark = pytest.mark.usefixtures("catalog")


async def test_only_small_bodies_are_kept_parsed(api: Api) -> None:
    songs._PARSED.clear()
    small = track_body()
    response = await api.post_song(small)
    assert response.status == 200, await response.text()
    assert len(songs._PARSED) == 1
    # Within the app's body limit, but far larger than any real track: parsed, not kept.
    big = {**small, "lyrics": "x" * 20_000}  # an unknown field: ignored, but in the bytes
    response = await api.post_song(big)
    assert response.status == 200, await response.text()
    assert len(json.dumps(big)) > songs._PARSED_MAX_BYTES
    assert len(songs._PARSED) == 1

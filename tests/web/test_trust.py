"""Cache poisoning: what one client sends never changes what another gets for a track id.

Spotify's own metadata (the fake Spotify's catalog, read by the real SpotifyClient) decides the
match kept under a track id; a request body is only a claim.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.youtube import FakeYouTube
from tests.pwa import TRACK_ID, track_body
from tests.web.conftest import VIDEO_ID, Api

pytestmark = pytest.mark.usefixtures("catalog")

OTHER_VIDEO = "otherSong01"


@pytest.fixture
def other_song(youtube: FakeYouTube) -> None:
    youtube.add_video(OTHER_VIDEO, "Gangnam Style", ["PSY"], 219, isrc="KRA381200380")


def claim(**fields: Any) -> dict[str, Any]:
    return {**track_body(), **fields}


# Another track's metadata under Rick's id.
POISON = claim(
    name="Gangnam Style", artistNames=["PSY"], albumName="", duration=219_000, isrc="KRA381200380"
)


async def video_under_the_id(api: Api) -> str:
    entry = await api.storage.get_stream(TRACK_ID)
    assert entry is not None
    return entry.video_url


@pytest.mark.usefixtures("other_song")
async def test_other_tracks_metadata_first_does_not_bind_the_id(api: Api) -> None:
    attacker = await api.post_song(POISON)
    assert attacker.status == 200
    assert (await video_under_the_id(api)).endswith(f"v={VIDEO_ID}")  # Spotify's track wins
    honest = await api.post_song(track_body())
    assert await honest.text() != ""
    assert (await video_under_the_id(api)).endswith(f"v={VIDEO_ID}")
    assert api.spotify.count(f"/v1/tracks/{TRACK_ID}", method="GET") == 1  # one lookup, kept


@pytest.mark.usefixtures("other_song")
async def test_force_with_other_metadata_changes_nothing(api: Api) -> None:
    await api.post_song(track_body())
    for _ in range(5):
        response = await api.post_song({**POISON, "force": True})
        assert response.status == 200
    assert (await video_under_the_id(api)).endswith(f"v={VIDEO_ID}")
    # One re-match (with Spotify's metadata) per cooldown, however often it is asked for.
    assert api.resolver.stats.searches == 2  # the first resolution and one re-match


async def test_junk_metadata_caches_no_failure_under_the_id(api: Api) -> None:
    junk = claim(name="zzzz qqqq", artistNames=["nobody at all"], duration=1, isrc="")
    response = await api.post_song(junk)
    assert response.status == 200  # the body was ignored: Spotify's metadata matched
    assert await api.storage.get_failure(TRACK_ID, 0) is None
    assert (await video_under_the_id(api)).endswith(f"v={VIDEO_ID}")


@pytest.mark.usefixtures("other_song")
async def test_without_spotify_a_claim_is_kept_for_that_claim_only(
    api: Api, youtube: FakeYouTube
) -> None:
    api.spotify.fail(503, path=f"/v1/tracks/{TRACK_ID}", times=None)
    # Spotify down: the client's metadata is searched, and kept for that exact claim only.
    poisoned = await api.post_song(POISON)
    assert poisoned.status == 200
    assert await api.storage.get_stream(TRACK_ID) is None  # nothing under the bare id
    junk = claim(name="zzzz qqqq", artistNames=["nobody at all"], duration=1, isrc="")
    failed = await api.post_song(junk)
    assert failed.status == 404
    assert await api.storage.get_failure(TRACK_ID, 0) is None  # nor a failure

    api.spotify.faults.clear()
    honest = await api.post_song(track_body())
    assert honest.status == 200
    assert (await video_under_the_id(api)).endswith(f"v={VIDEO_ID}")
    by_id = await api.client.get(f"/v1/tracks/{TRACK_ID}")
    assert (await by_id.json())["video_url"].endswith(f"v={VIDEO_ID}")

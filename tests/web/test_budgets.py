"""What anyone on the internet can make the server spend is capped for all clients together:
Spotify lookups of new ids, and searches made from a client's own metadata (claims)."""

from __future__ import annotations

import random
import string

import aiohttp
import pytest

from core.budget import BucketLimit
from core.resolver import ResolverConfig
from core.spotify import CallPriority
from tests.fakes.youtube import FakeYouTube
from tests.pwa import TRACK_ID, track_body
from tests.web.conftest import RICK, ApiFactory

pytestmark = pytest.mark.usefixtures("catalog")


def random_id(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=22))


async def test_random_ids_stay_under_the_lookup_cap(api_factory: ApiFactory) -> None:
    # Budget 100: BACKGROUND stops at 50; the lookup bucket (burst 20) stops well before that.
    api = await api_factory(daily_budget=100)
    rng = random.Random(11)
    statuses = set()
    for _ in range(100):
        response = await api.client.get(f"/v1/tracks/{random_id(rng)}")
        statuses.add(response.status)
        await response.read()
    assert statuses <= {404, 503}
    calls = api.spotify.count("/v1/tracks/", method="GET")
    assert 1 <= calls <= 20
    # A host's player read still gets through: the lookups never touched COMMAND's reserve.
    assert api.spotify_client.quota.allows(CallPriority.COMMAND)
    track = await api.spotify_client.track(RICK.id, priority=CallPriority.COMMAND)
    assert track.id == RICK.id


async def test_an_unknown_id_is_looked_up_once(api_factory: ApiFactory) -> None:
    api = await api_factory()
    missing = "Z" * 22
    for _ in range(5):
        response = await api.client.get(f"/v1/tracks/{missing}")
        assert response.status == 404, await response.text()
    assert api.spotify.count(f"/v1/tracks/{missing}", method="GET") == 1


async def test_a_song_request_for_an_unknown_id_costs_one_lookup(api_factory: ApiFactory) -> None:
    api = await api_factory()
    body = {**track_body(), "id": "Y" * 22}
    for _ in range(3):
        response = await api.post_song(body)
        assert response.status == 404, await response.text()
    assert api.spotify.count(f"/v1/tracks/{'Y' * 22}", method="GET") == 1


async def test_claims_have_a_bound_and_a_search_budget(
    api_factory: ApiFactory, youtube: FakeYouTube
) -> None:
    config = ResolverConfig(
        claim_entries=4, claim_searches=BucketLimit(burst=6, per_s=1 / 3600), timeout_s=20.0
    )
    api = await api_factory(resolver_config=config)
    youtube.stream_lifetime = 900  # every entry is "expiring soon" for the refresher
    api.spotify.fail(503, path=f"/v1/tracks/{TRACK_ID}", times=None)  # Spotify cannot be asked
    statuses = []
    for n in range(12):  # every body variation is a new claim
        response = await api.post_song({**track_body(), "albumName": f"variation {n}"})
        statuses.append(response.status)
        await response.read()
    assert statuses[:6] == [200] * 6
    assert set(statuses[6:]) == {503}  # the global claim-search budget is spent
    assert api.resolver.stats.searches == 6
    assert await api.storage.count_streams() == 4  # the claim LRU's bound
    # The refresher never keeps claims alive.
    before = youtube.counts.page_fetches
    assert await api.resolver.refresh_expiring() == 0
    assert youtube.counts.page_fetches == before


async def test_an_evicted_claims_relay_url_costs_no_lookup(
    api_factory: ApiFactory, youtube: FakeYouTube
) -> None:
    api = await api_factory(resolver_config=ResolverConfig(claim_entries=1, timeout_s=20.0))
    api.spotify.fail(503, path=f"/v1/tracks/{TRACK_ID}", times=None)
    first = await api.post_song({**track_body(), "albumName": "first"})
    url = (await first.text()).replace('"', "")
    assert first.status == 200 and "~" in url  # a claim key's relay URL
    second = await api.post_song({**track_body(), "albumName": "second"})  # evicts the first
    assert second.status == 200
    lookups = api.spotify.count("/v1/tracks/", method="GET")
    async with aiohttp.ClientSession() as browser, browser.get(url) as audio:
        assert audio.status == 404
        assert "play it again" in await audio.text()
    assert api.spotify.count("/v1/tracks/", method="GET") == lookups

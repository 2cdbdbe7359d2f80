"""The /link flow end to end: Linker + real HTTP consent page + token exchange + /v1/me."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from core.linking import Linker
from core.spotify import SpotifyClient
from storage import Storage
from storage.records import LinkStatus
from tests.fakes.spotify import FakeSpotify
from tests.spotify.conftest import ALICE, REDIRECT_URI


def callback_params(url: str) -> dict[str, str]:
    assert url.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_full_round_trip_links_and_the_link_works(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    linker = Linker(links, links, client)
    url = await linker.begin(ALICE, guild_id=42)

    query = parse_qs(urlsplit(url).query)
    state = query["state"][0]
    assert len(base64.urlsafe_b64decode(state + "==")) * 8 >= 128
    assert set(query["scope"][0].split()) >= {"user-modify-playback-state", "playlist-read-private"}

    params = callback_params(await fake.consent(url, "alice"))
    assert params["state"] == state
    outcome = await linker.complete(params.get("state"), params.get("code"), params.get("error"))

    assert outcome.ok
    assert outcome.reason == "linked"
    assert (outcome.discord_user_id, outcome.display_name) == (ALICE, "Alice")  # from the state
    stored = await linker.link(ALICE)
    assert stored is not None
    assert stored.spotify_user_id == "alice"
    assert stored.status == LinkStatus.OK
    assert "user-read-playback-state" in stored.scopes
    # The stored tokens really work against the API.
    assert (await client.profile(ALICE)).id == "alice"

    replay = await linker.complete(params["state"], params["code"], None)
    assert (replay.ok, replay.reason) == (False, "used")
    assert await linker.unlink(ALICE) is True
    assert await linker.link(ALICE) is None


async def test_each_begin_issues_a_fresh_state(links: Storage, client: SpotifyClient) -> None:
    linker = Linker(links, links, client)
    first = parse_qs(urlsplit(await linker.begin(ALICE, None)).query)["state"]
    second = parse_qs(urlsplit(await linker.begin(ALICE, None)).query)["state"]
    assert first != second


async def test_cancel_on_consent_page_is_denied_and_links_nothing(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    linker = Linker(links, links, client)
    params = callback_params(
        await fake.consent(await linker.begin(ALICE, None), "alice", agree=False)
    )
    assert params["error"] == "access_denied"
    outcome = await linker.complete(params["state"], None, params["error"])
    assert (outcome.ok, outcome.reason, outcome.discord_user_id) == (False, "denied", ALICE)
    assert await linker.link(ALICE) is None


async def test_expired_state_is_refused(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    now = [1_000_000.0]
    linker = Linker(links, links, client, clock=lambda: now[0])
    params = callback_params(await fake.consent(await linker.begin(ALICE, None), "alice"))
    now[0] += 601
    outcome = await linker.complete(params["state"], params["code"], None)
    assert (outcome.ok, outcome.reason) == (False, "expired")
    assert await linker.link(ALICE) is None


@pytest.mark.parametrize("state", [None, "", "forged-state-never-issued"])
async def test_missing_or_unknown_state_is_refused(
    links: Storage, client: SpotifyClient, state: str | None
) -> None:
    outcome = await Linker(links, links, client).complete(state, "code", None)
    assert (outcome.ok, outcome.reason, outcome.discord_user_id) == (False, "unknown", None)


async def test_bad_code_is_an_exchange_failure(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    linker = Linker(links, links, client)
    params = callback_params(await fake.consent(await linker.begin(ALICE, None), "alice"))
    outcome = await linker.complete(params["state"], "not-the-code", None)
    assert (outcome.ok, outcome.reason) == (False, "exchange_failed")
    assert "did not complete" in outcome.message  # the page adds what to do next
    assert await linker.link(ALICE) is None

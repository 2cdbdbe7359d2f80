"""The /link flow end to end: Linker + real HTTP consent page + token exchange + /v1/me."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from bot.web.linking import add_link_routes
from bot.web.ratelimit import RateLimit, RateLimiter
from bot.web.services import LIMITER
from core.linking import Linker, PendingLink
from core.spotify import SpotifyClient
from storage import Storage
from storage.errors import StorageUnavailable
from storage.records import LinkStatus, SpotifyLink
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

    assert query["show_dialog"] == ["true"]  # a returning user still sees what they agree to

    params = callback_params(await fake.consent(url, "alice"))
    assert params["state"] == state
    outcome = await linker.complete(params.get("state"), params.get("code"), params.get("error"))

    # The callback stores nothing: the person confirms first, with the form token.
    assert (outcome.ok, outcome.reason) == (True, "confirm")
    pending = outcome.pending
    assert pending is not None
    assert (pending.discord_user_id, pending.spotify_user_id) == (ALICE, "alice")
    assert await linker.link(ALICE) is None
    forged = await linker.confirm(state, "not-the-form-token")
    assert (forged.ok, forged.reason) == (False, "used")
    assert await linker.link(ALICE) is None

    outcome = await linker.confirm(state, pending.form_token)
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
    again = await linker.confirm(state, pending.form_token)  # the confirmation is single-use
    assert (again.ok, again.reason) == (False, "used")
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
    assert "nothing was linked" in outcome.message  # the page adds what to do next
    assert await linker.link(ALICE) is None


async def _pending(fake: FakeSpotify, linker: Linker, user: int = ALICE) -> PendingLink:
    params = callback_params(await fake.consent(await linker.begin(user, None), "alice"))
    outcome = await linker.complete(params["state"], params["code"], None)
    assert outcome.pending is not None
    return outcome.pending


async def test_cancel_on_the_confirmation_links_nothing_and_uses_it_up(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    linker = Linker(links, links, client)
    pending = await _pending(fake, linker)
    assert (await linker.cancel(pending.state, "wrong-token")).reason == "used"
    assert (await linker.cancel(pending.state, pending.form_token)).reason == "cancelled"
    # Link after Cancel: the first press won, and the page says what it did.
    assert (await linker.confirm(pending.state, pending.form_token)).reason == "cancelled"
    assert await linker.link(ALICE) is None


async def test_a_pending_link_expires(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    now = [1_000_000.0]
    linker = Linker(links, links, client, clock=lambda: now[0])
    pending = await _pending(fake, linker)
    now[0] += 601
    assert (await linker.confirm(pending.state, pending.form_token)).reason == "used"
    assert await linker.link(ALICE) is None


async def test_discord_identity_must_match_the_user_who_ran_link(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    linker = Linker(links, links, client)
    pending = await _pending(fake, linker)
    assert await linker.vouch(pending.state, "wrong-token") is None
    discord_state = await linker.vouch(pending.state, pending.form_token)
    assert discord_state is not None
    mismatch = await linker.confirm_as(discord_state, ALICE + 1)
    assert (mismatch.ok, mismatch.reason) == (False, "mismatch")
    assert await linker.link(ALICE) is None
    # The mismatch used it up: no second guess with the right id.
    assert (await linker.confirm_as(discord_state, ALICE)).reason == "used"
    assert (await linker.confirm(pending.state, pending.form_token)).reason == "used"

    pending = await _pending(fake, linker)
    discord_state = await linker.vouch(pending.state, pending.form_token)
    assert discord_state is not None
    assert (await linker.confirm_as(discord_state, ALICE)).reason == "linked"
    assert await linker.link(ALICE) is not None


async def test_a_returning_user_sees_the_consent_page_again(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    """Without show_dialog Spotify approves a returning signed-in user silently: whoever opens
    a forwarded /link URL would link without seeing it. Our URL always asks."""
    linker = Linker(links, links, client)
    await fake.consent(await linker.begin(ALICE, None), "alice")  # signs the browser in
    assert fake.signed_in == "alice"
    url = await linker.begin(ALICE + 1, None)
    async with aiohttp.ClientSession() as http:
        async with http.get(url, allow_redirects=False) as page:
            assert page.status == 200 and "Agree" in await page.text()
        silent = url.replace("&show_dialog=true", "")
        async with http.get(silent, allow_redirects=False) as page:
            assert page.status == 302 and "code=" in page.headers["Location"]


class _GatedLinks:
    """The real store, with put_link held until the test opens the gate (a slow disk)."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        self.writing = asyncio.Event()
        self.gate = asyncio.Event()

    async def put_link(self, link: SpotifyLink) -> None:
        self.writing.set()
        await self.gate.wait()
        await self.store.put_link(link)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


async def test_cancel_while_link_is_saving_says_it_was_linked(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    """The first press wins, and the second is told what it did: never "used" while the link
    is being stored anyway."""
    gated = _GatedLinks(links)
    linker = Linker(links, gated, client, pending=links)  # type: ignore[arg-type]
    pending = await _pending(fake, linker)
    linking = asyncio.create_task(linker.confirm(pending.state, pending.form_token))
    await gated.writing.wait()
    cancel = await linker.cancel(pending.state, pending.form_token)
    assert (cancel.ok, cancel.reason) == (False, "already_linked")
    assert "/unlink" in cancel.message
    gated.gate.set()
    assert (await linking).reason == "linked"
    assert await linker.link(ALICE) is not None


async def test_a_failed_save_puts_the_pending_link_back(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    class Failing(_GatedLinks):
        async def put_link(self, link: SpotifyLink) -> None:
            raise StorageUnavailable("disk gone")

    linker = Linker(links, Failing(links), client, pending=links)  # type: ignore[arg-type]
    pending = await _pending(fake, linker)
    with pytest.raises(StorageUnavailable):
        await linker.confirm(pending.state, pending.form_token)
    assert await linker.pending(pending.state, pending.form_token) is not None  # press again
    assert (await Linker(links, links, client).confirm(pending.state, pending.form_token)).ok


async def test_a_rate_limited_callback_on_a_bare_app_is_429_not_500(
    links: Storage, client: SpotifyClient
) -> None:
    """add_link_routes on an app not made by create_app (no error middleware) still answers
    the limiter's refusal as a plain 429 with Retry-After."""
    app = web.Application()
    app[LIMITER] = RateLimiter(RateLimit(rate=0.01, burst=1))
    add_link_routes(app, Linker(links, links, client))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}/spotify/callback?state=forged&code=x"
        async with aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(2):
                async with http.get(url) as response:
                    statuses.append(response.status)
                    retry_after = response.headers.get("Retry-After")
        assert statuses == [400, 429]
        assert retry_after is not None and int(retry_after) >= 1
    finally:
        await runner.cleanup()

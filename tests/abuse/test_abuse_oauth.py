"""OAuth forgery, replay and cross-user completion against the real server: nothing gets linked
that the person who ran /link did not confirm, no answer is a 5xx, no log line is forged."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import aiohttp
import pytest

from tests.abuse.conftest import ErrorRecords, Target
from tests.bot.conftest import World
from tests.fakes.discord_oauth import FakeDiscordOAuth
from tests.linkpage import confirm_form, confirm_url, press


async def _post(url: str, form: dict[str, str] | str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=form, allow_redirects=False) as response,
    ):
        await response.read()
        return response.status


async def _raw(url: str, body: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body.encode(), headers=headers) as response,
    ):
        await response.read()
        return response.status


async def test_abuse_oauth_forgery_and_replay_link_nothing(
    world: World, target: Target, error_records: ErrorRecords, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="core.linking")
    world.spotify.add_account("mallory-sp", "Mallory")
    alice = world.discord.add_member("alice")
    callback = world.callback_url
    storage = target.app.services.storage

    # Forged states and codes, with log-forging text in error=.
    for query in (
        "state=forged&code=x",
        "state=&code=",
        "code=only",
        "state=" + "A" * 43 + "&error=access_denied%0d%0aINFO%20forged%20line",
        "state=%ud800&code=%00",
    ):
        assert await target.request("GET", "/spotify/callback?" + query) == 400

    reply = await (await world.discord.slash("link", alice)).reply()
    redirect = await world.spotify.consent(reply.link_urls()[0], "mallory-sp")
    declined = redirect.replace("code=", "error=access_denied%0d%0aFAKE%20LOG&x=")
    async with aiohttp.ClientSession() as http, http.get(redirect) as response:
        page = await response.text()
    fields = confirm_form(page)
    assert (await world.browse(redirect))[0] == 400  # the callback cannot be replayed
    assert (await world.browse(declined))[0] == 400

    url = confirm_url(callback)
    forms: list[dict[str, str] | str] = [
        {**fields, "action": "link", "token": "forged"},
        {**fields, "action": "link", "token": fields["token"][:-1]},
        {**fields, "action": "link", "state": "forged"},
        {"state": fields["state"], "action": "link"},
        f"state={fields['state']}&action=link&token=%ED%A0%80%00%0d%0a",  # surrogate, NUL
        {**fields, "action": "link", "token": "t" * 10_000},
        {**fields, "action": "steal"},
        {},
    ]
    for form in forms:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status = (
            await _post(url, form) if isinstance(form, dict) else await _raw(url, form, headers)
        )
        assert 400 <= status < 500, (form, status)
        target.seen("confirm", status)
    assert await storage.get_link(alice.user_id) is None
    assert await target.request("GET", "/spotify/confirm") == 405

    # The real form works once; a replay finds nothing.
    status, linked = await press(callback, page)
    assert (status, "Spotify linked" in linked) == (200, True)
    status, again = await press(callback, page)
    assert status == 400 and "already used" in again
    await world.discord.wait_until(lambda: bool(world.discord.dms(alice)))
    # A real state with a log-forging error= text: logged escaped, on one line.
    reply = await (await world.discord.slash("link", alice)).reply()
    state = reply.link_urls()[0].split("state=")[1].split("&")[0]
    forging = f"{callback}?state={state}&error=access_denied%0d%0a2026-01-01%20ERROR%20forged"
    assert (await world.browse(forging))[0] == 200
    declined = [r for r in caplog.records if "declined" in r.getMessage()]
    assert declined and "\\r\\n" in declined[0].getMessage()
    for record in caplog.records:
        assert "\n" not in record.getMessage() and "\r" not in record.getMessage()
    assert target.server_errors() == []
    assert error_records.lines() == []


async def test_abuse_oauth_cross_user_completion_is_refused(
    world: World, error_records: ErrorRecords
) -> None:
    """With Discord's identify: Bob completes Alice's /link, or replays Discord's redirect, or
    forges its code; nothing links, and nothing is a 5xx."""
    oauth = FakeDiscordOAuth(world.discord)
    world.settings = dataclasses.replace(world.settings, discord_client_secret=oauth.client_secret)
    oauth.redirect_uris.add(world.settings.public_base_url + "/discord/callback")
    world.spotify.add_account("bob-sp", "Bob")
    alice, bob = world.discord.add_member("alice"), world.discord.add_member("bob")
    async with world.run() as app:
        oauth.signed_in = bob
        status, page = await world.link(alice, "bob-sp", confirm=False)
        status, authorize = await press(world.callback_url, page)
        assert status == 303
        back = await oauth.consent(authorize)
        status, page = await world.browse(back)
        assert status == 403 and "This link isn't yours" in page
        assert (await world.browse(back))[0] == 400  # replayed: used up
        assert await app.services.storage.get_link(alice.user_id) is None

        # A forged code for a real pending confirmation: Discord refuses it, a 400.
        status, page = await world.link(alice, "bob-sp", confirm=False)
        status, authorize = await press(world.callback_url, page)
        state = authorize.split("state=")[1].split("&")[0]
        forged = f"{world.settings.public_base_url}/discord/callback?code=forged&state={state}"
        assert (await world.browse(forged))[0] == 400
        assert await app.services.storage.get_link(alice.user_id) is None
        for query in ("", "?state=x&code=y", "?error=access_denied", "?state=%00&code=%ff"):
            url = f"{world.settings.public_base_url}/discord/callback{query}"
            assert (await world.browse(url))[0] == 400, query
    assert error_records.lines() == []


async def test_abuse_a_slow_confirmation_form_is_408_like_a_slow_song_body(
    world: World, target: Target, error_records: ErrorRecords
) -> None:
    """The form trickles in past the body deadline: 408 (too slow), as for /song; not 400."""
    head = (
        b"POST /spotify/confirm HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    try:
        writer.write(head + b"state=abc&tok")
        await writer.drain()
        async with asyncio.timeout(30):
            answer = await reader.read(65536)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"took too long" in answer
    assert error_records.lines() == []

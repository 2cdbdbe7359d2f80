"""Linking end to end: /link -> Spotify consent -> /spotify/callback -> stored, encrypted link."""

from __future__ import annotations

import dataclasses
import time

from storage.records import OAuthState
from tests.bot.conftest import World
from tests.fakes.discord_oauth import FakeDiscordOAuth
from tests.linkpage import press


async def test_link_round_trip_stores_an_encrypted_token_and_confirms_in_discord(
    world: World,
) -> None:
    world.spotify.add_account("alice-sp", "Alice Liddell")
    alice = world.discord.add_member("alice")
    async with world.run() as app:
        reply = await (await world.discord.slash("link", alice)).reply()
        assert reply.ephemeral
        assert "expires in 10 minutes" in reply.text
        (url,) = reply.link_urls()
        assert url.startswith(world.spotify.base + "/authorize?")
        assert "state=" in url

        callback = await world.spotify.consent(url, "alice-sp")
        status, page = await world.browse(callback)
        # Nothing is stored until the person confirms which accounts get linked.
        assert status == 200
        assert "Link this Spotify account?" in page
        assert "alice" in page and "Alice Liddell" in page  # the Discord and Spotify accounts
        assert await app.services.storage.get_link(alice.user_id) is None
        status, page = await press(world.callback_url, page)
        assert status == 200
        assert "Spotify linked" in page
        assert "Alice Liddell" in page

        link = await app.services.storage.get_link(alice.user_id)
        assert link is not None
        assert (link.spotify_user_id, link.display_name) == ("alice-sp", "Alice Liddell")
        assert "user-modify-playback-state" in link.scopes
        # The DM confirmation arrives once the page has been served.
        await world.discord.wait_until(lambda: bool(world.discord.dms(alice)))
        assert "Alice Liddell" in world.discord.dms(alice)[0].text

        me = await (await world.discord.slash("me", alice)).reply()
        assert me.ephemeral
        assert "Alice Liddell" in me.text
        assert "✅ Spotify answers" in me.text

    # At rest the token is ciphertext: the SQLite file never holds it in the clear.
    raw = world.db_path.read_bytes()
    assert link.access_token.encode() not in raw
    assert link.refresh_token.encode() not in raw


async def test_every_callback_failure_gets_its_own_page(world: World) -> None:
    world.spotify.add_account("bob-sp", "Bob")
    bob = world.discord.add_member("bob")
    callback = world.callback_url
    async with world.run() as app:
        # Denied on the consent page.
        status, page = await world.link(bob, "bob-sp", agree=False)
        assert (status, "Nothing was linked" in page) == (200, True)
        assert "You cancelled" in page

        # Forged state, and no state at all.
        status, page = await world.browse(f"{callback}?state=forged-state&code=abc")
        assert status == 400
        assert "isn't valid" in page
        status, page = await world.browse(callback)
        assert status == 400
        assert "isn't valid" in page

        # Expired: a state issued eleven minutes ago.
        old = time.time() - 660
        await app.services.storage.put_oauth_state(
            OAuthState("s" * 43, bob.user_id, None, created_at=old, expires_at=old + 600)
        )
        status, page = await world.browse(f"{callback}?state={'s' * 43}&code=abc")
        assert status == 400
        assert "expired" in page

        # Spotify's token endpoint fails during the exchange.
        fault = world.spotify.fail(503, path="/api/token", times=None)
        status, page = await world.link(bob, "bob-sp")
        assert status == 502
        assert "Spotify didn't finish linking" in page
        assert "did not complete the link" not in page  # the heading, not said twice
        assert fault.hits >= 1
        world.spotify.clear_faults()
        assert await app.services.storage.get_link(bob.user_id) is None

        # Reused: the same redirect followed twice.
        reply = await (await world.discord.slash("link", bob)).reply()
        redirect = await world.spotify.consent(reply.link_urls()[0], "bob-sp")
        status, confirm_page = await world.browse(redirect)
        assert status == 200
        status, page = await world.browse(redirect)
        assert status == 400
        assert "already used" in page

        # A forged confirmation (right state, wrong token) links nothing; nor does a replay.
        status, page = await press(world.callback_url, confirm_page, token="forged")
        assert status == 400
        assert await app.services.storage.get_link(bob.user_id) is None
        assert (await press(world.callback_url, confirm_page))[0] == 200
        status, page = await press(world.callback_url, confirm_page)
        assert status == 400
        assert "already used" in page

        assert "Traceback" not in page


async def test_callback_page_escapes_what_it_shows(world: World) -> None:
    world.spotify.add_account("mallory-sp", "<script>alert(1)</script>")
    mallory = world.discord.add_member("mallory")
    async with world.run():
        status, page = await world.link(mallory, "mallory-sp")
    assert status == 200
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


async def test_unlink_and_me(world: World) -> None:
    world.spotify.add_account("carol-sp", "Carol")
    carol = world.discord.add_member("carol")
    async with world.run() as app:
        me = await (await world.discord.slash("me", carol)).reply()
        assert "haven't linked Spotify" in me.text

        assert (await world.link(carol, "carol-sp"))[0] == 200
        unlink = await (await world.discord.slash("unlink", carol)).reply()
        assert unlink.ephemeral
        assert "Unlinked" in unlink.text
        assert await app.services.storage.get_link(carol.user_id) is None

        again = await (await world.discord.slash("unlink", carol)).reply()
        assert "no Spotify account linked" in again.text


async def test_me_reports_a_revoked_link(world: World) -> None:
    world.spotify.add_account("dave-sp", "Dave")
    dave = world.discord.add_member("dave")
    async with world.run():
        assert (await world.link(dave, "dave-sp"))[0] == 200
        world.spotify.revoke_refresh_tokens("dave-sp")
        world.spotify.expire_access_tokens("dave-sp")
        me = await (await world.discord.slash("me", dave)).reply()
        assert "⚠️" in me.text
        assert "/link" in me.text


async def test_an_account_not_on_the_apps_allowlist_is_told_what_to_ask_for(
    world: World,
) -> None:
    # Spotify lets anyone consent, then refuses every call of an account the app owner did not
    # add under Users and Access (development mode, at most 5 accounts).
    world.spotify.add_account("dora-sp", "Dora", allowlisted=False)
    dora = world.discord.add_member("dora")
    async with world.run() as app:
        status, page = await world.link(dora, "dora-sp")
        assert status >= 400  # the failure page
        assert "Users and Access" in page and "at most 5 people" in page
        assert await app.services.storage.get_link(dora.user_id) is None


async def test_me_says_when_the_app_owners_premium_lapsed(world: World) -> None:
    world.spotify.add_account("erin-sp", "Erin")
    erin = world.discord.add_member("erin")
    async with world.run():
        status, _ = await world.link(erin, "erin-sp")
        assert status == 200
        world.spotify.devmode.owner_premium = False
        me = await (await world.discord.slash("me", erin)).reply()
        assert "owns its app needs an active Premium" in me.text
        assert "Traceback" not in me.text


async def test_the_confirmation_page_names_the_discord_account_and_can_cancel(
    world: World,
) -> None:
    """A /link URL forwarded to someone else: the page says whose Discord account it is."""
    world.spotify.add_account("victim-sp", "Victim")
    eve = world.discord.add_member("eve")
    async with world.run() as app:
        status, page = await world.link(eve, "victim-sp", confirm=False)
        assert status == 200
        assert "eve (@eve)" in page and "Victim" in page
        assert 'action="/spotify/confirm"' in page
        status, page = await press(world.callback_url, page, action="cancel")
        assert (status, "Nothing was linked" in page) == (200, True)
        assert await app.services.storage.get_link(eve.user_id) is None


async def test_with_discord_oauth_only_the_user_who_ran_link_can_complete_it(
    world: World,
) -> None:
    """Alice sends her /link URL to Bob; Bob agrees with his Spotify and presses Link: Discord
    says it is Bob, so nothing is linked. Alice doing it herself links."""
    oauth = FakeDiscordOAuth(world.discord)
    world.settings = dataclasses.replace(world.settings, discord_client_secret=oauth.client_secret)
    oauth.redirect_uris.add(world.settings.public_base_url + "/discord/callback")
    world.spotify.add_account("bob-sp", "Bob")
    world.spotify.add_account("alice-sp", "Alice")
    alice, bob = world.discord.add_member("alice"), world.discord.add_member("bob")
    async with world.run() as app:
        status, page = await world.link(alice, "bob-sp", confirm=False)  # Bob's browser
        assert status == 200 and "Confirm with Discord" in page
        status, authorize = await press(world.callback_url, page)
        assert status == 303 and authorize.startswith(world.discord_origin + "/oauth2/authorize?")
        oauth.signed_in = bob
        status, page = await world.browse(await oauth.consent(authorize))
        assert status == 403
        assert "This link isn't yours" in page
        assert await app.services.storage.get_link(alice.user_id) is None
        # The Discord redirect cannot be replayed either.
        assert oauth.exchanges == 1

        oauth.signed_in = alice  # Alice, in her own browser
        status, page = await world.link(alice, "alice-sp", confirm=False)
        status, authorize = await press(world.callback_url, page)
        status, page = await world.browse(await oauth.consent(authorize))
        assert (status, "Spotify linked" in page) == (200, True)
        link = await app.services.storage.get_link(alice.user_id)
        assert link is not None and link.spotify_user_id == "alice-sp"

        # Cancel on Discord's page links nothing.
        status, page = await world.link(bob, "bob-sp", confirm=False)
        oauth.signed_in = bob
        status, authorize = await press(world.callback_url, page)
        status, page = await world.browse(await oauth.consent(authorize, agree=False))
        assert (status, "Nothing was linked" in page) == (200, True)
        assert await app.services.storage.get_link(bob.user_id) is None


async def test_a_secret_rejected_after_start_says_misconfigured_not_try_again(
    world: World,
) -> None:
    world.spotify.add_account("bob-sp", "Bob")
    bob = world.discord.add_member("bob")
    async with world.run():
        # The operator reset the secret in the Spotify dashboard while the bot was running.
        world.spotify.app.client_secret = "reset-in-the-dashboard"
        status, page = await world.link(bob, "bob-sp")
    assert status == 503
    assert "This bot is misconfigured" in page
    assert "tell the bot&#x27;s operator" in page or "tell the bot's operator" in page
    assert "Wait a moment" not in page
    assert page.count("until they") <= 1  # the page says it once


async def test_callback_pages_say_each_thing_once(world: World) -> None:
    world.spotify.add_account("ann-sp", "Ann")
    ann = world.discord.add_member("ann")
    async with world.run():
        status, page = await world.link(ann, "ann-sp")
        _, expired = await world.browse(f"{world.callback_url}?state={'x' * 43}&code=abc")
    assert status == 200
    for text in (page, expired):
        assert text.count("close this") == 1, text
        assert text.count("/link") <= 1, text

"""Linking Spotify the way a person does it: the URL from /link, the consent page, a click."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.bot.conftest import World
from tests.browser.conftest import screenshot
from tests.fakes.discord_oauth import FakeDiscordOAuth

pytestmark = pytest.mark.browser


async def test_agree_on_the_consent_page_links_the_account(
    world: World, page: Page, tmp_path: Path
) -> None:
    world.spotify.add_account("alice-sp", "Alice Liddell")
    world.spotify.add_account("bob-sp", "Bob Builder")
    alice = world.discord.add_member("alice")
    async with world.run() as app:
        reply = await (await world.discord.slash("link", alice)).reply()
        (url,) = reply.link_urls()

        await page.goto(url)
        await expect(page.locator("h1")).to_contain_text("Connect to")
        await page.get_by_label("Account").select_option("alice-sp")  # the account picker
        await page.get_by_role("button", name="Agree").click()

        # Our page names both accounts; nothing is stored until Link is pressed.
        await expect(page.locator("h1")).to_have_text("Link this Spotify account?")
        assert page.url.startswith(world.callback_url + "?")
        await expect(page.locator("#discord-account")).to_contain_text("alice (@alice)")
        await expect(page.locator("#spotify-account")).to_contain_text("Alice Liddell")
        await screenshot(page, "link-confirm.png", tmp_path)
        assert await app.services.storage.get_link(alice.user_id) is None
        await page.get_by_role("button", name="Link these accounts").click()

        await expect(page.locator("h1")).to_have_text("Spotify linked")
        await expect(page.get_by_role("status")).to_contain_text("Alice Liddell")
        await screenshot(page, "link-success.png", tmp_path)

        link = await app.services.storage.get_link(alice.user_id)
        assert link is not None
        assert (link.spotify_user_id, link.display_name) == ("alice-sp", "Alice Liddell")
        await world.discord.wait_until(lambda: bool(world.discord.dms(alice)))

        await page.goto(url)  # the consent page again; the state was used up
        await page.get_by_role("button", name="Agree").click()
        await expect(page.locator("h1")).to_have_text("This link was already used")


async def test_cancel_on_the_consent_page_links_nothing(world: World, page: Page) -> None:
    world.spotify.add_account("alice-sp", "Alice Liddell")
    alice = world.discord.add_member("alice")
    async with world.run() as app:
        reply = await (await world.discord.slash("link", alice)).reply()
        (url,) = reply.link_urls()

        await page.goto(url)
        await page.get_by_role("button", name="Cancel").click()

        await expect(page.locator("h1")).to_have_text("Nothing was linked")
        await expect(page.locator(".next")).to_contain_text("Run /link in Discord again")
        assert await app.services.storage.get_link(alice.user_id) is None


async def test_cancel_on_our_confirmation_page_links_nothing(world: World, page: Page) -> None:
    world.spotify.add_account("bob-sp", "Bob Builder")
    alice = world.discord.add_member("alice")
    async with world.run() as app:
        reply = await (await world.discord.slash("link", alice)).reply()
        await page.goto(reply.link_urls()[0])
        await page.get_by_role("button", name="Agree").click()
        await expect(page.locator("#spotify-account")).to_contain_text("Bob Builder")
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.locator("h1")).to_have_text("Nothing was linked")
        assert await app.services.storage.get_link(alice.user_id) is None


async def test_discord_oauth_refuses_someone_else_completing_the_link(
    world: World, page: Page
) -> None:
    """Alice forwards her /link URL; Bob, signed in to Discord in his browser, agrees and
    confirms: Discord says it is Bob, and nothing is linked. Then Alice links her own."""
    oauth = FakeDiscordOAuth(world.discord)
    world.settings = dataclasses.replace(world.settings, discord_client_secret=oauth.client_secret)
    oauth.redirect_uris.add(world.settings.public_base_url + "/discord/callback")
    world.spotify.add_account("bob-sp", "Bob Builder")
    world.spotify.add_account("alice-sp", "Alice Liddell")
    alice, bob = world.discord.add_member("alice"), world.discord.add_member("bob")
    async with world.run() as app:
        oauth.signed_in = bob
        reply = await (await world.discord.slash("link", alice)).reply()
        await page.goto(reply.link_urls()[0])
        await page.get_by_label("Account").select_option("bob-sp")
        await page.get_by_role("button", name="Agree").click()
        await expect(page.locator("#discord-account")).to_contain_text("alice")
        await page.get_by_role("button", name="Confirm with Discord").click()
        await expect(page.locator("h1")).to_contain_text("wants to access your Discord")
        await page.get_by_role("button", name="Authorize").click()
        await expect(page.locator("h1")).to_have_text("This link isn't yours")
        assert await app.services.storage.get_link(alice.user_id) is None

        oauth.signed_in = alice
        reply = await (await world.discord.slash("link", alice)).reply()
        await page.goto(reply.link_urls()[0])
        await page.get_by_label("Account").select_option("alice-sp")
        await page.get_by_role("button", name="Agree").click()
        await page.get_by_role("button", name="Confirm with Discord").click()
        await page.get_by_role("button", name="Authorize").click()
        await expect(page.locator("h1")).to_have_text("Spotify linked")
        link = await app.services.storage.get_link(alice.user_id)
        assert link is not None and link.spotify_user_id == "alice-sp"

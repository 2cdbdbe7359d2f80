"""Linking Spotify the way a person does it: the URL from /link, the consent page, a click."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.bot.conftest import World
from tests.browser.conftest import screenshot

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

        await expect(page.locator("h1")).to_have_text("Spotify linked")
        assert page.url.startswith(world.callback_url + "?")
        await expect(page.get_by_role("status")).to_contain_text("Alice Liddell")
        await screenshot(page, "link-success.png", tmp_path)

        link = await app.services.storage.get_link(alice.user_id)
        assert link is not None
        assert (link.spotify_user_id, link.display_name) == ("alice-sp", "Alice Liddell")
        await world.discord.wait_until(lambda: bool(world.discord.dms(alice)))

        await page.go_back()  # the consent page again; the state was used up
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

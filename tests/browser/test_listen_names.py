"""The listen page behind the real bot: member names from Discord, honest counts (#14 item 9).

The whole sandbox (fake Discord, Spotify and YouTube, the real bot) with a real chromium on
the page that /gamenight listen hands out. With SAVE_SCREENSHOTS=1 this is docs/listen-page.png.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page, expect

from tests.browser.conftest import screenshot
from tests.sandbox.night import Night
from tests.sandbox.world import Kind, Options, Sandbox


async def test_listen_page_shows_member_names_and_who_is_really_on_spotify(
    page: Page, tmp_path: Path
) -> None:
    options = Options(listeners=3, latency_ms=20.0, poll_interval_s=0.5, drift_check_s=2.0)
    async with Sandbox.open(options) as box:
        box.youtube.audio_seconds = 60  # the host starts 20 s in: the audio must reach past it
        night = Night(box)
        await night.link_everyone()
        await night.start()
        await night.join()  # waits until the listener without Premium is flagged
        free = next(p for p in box.listeners if p.kind is Kind.FREE)
        shown = await box.say("gamenight listen", free)
        match = re.search(r"\]\((http://127\.0\.0\.1:\d+/listen/[\w-]+)\)", shown)
        assert match, shown

        await page.goto(match[1])
        people = page.locator("#people")
        await expect(people).to_contain_text(f"{box.host.name} (host)", timeout=15_000)
        for person in box.listeners:
            if person.kind is Kind.FREE:
                await expect(people).not_to_contain_text(person.name)
            else:
                await expect(people).to_contain_text(f"{person.name} on Spotify")
        await expect(people).not_to_contain_text("someone")
        state = page.locator("#state")
        await expect(state).to_contain_text("in sync with the host", timeout=20_000)
        assert not await page.evaluate("document.getElementById('audio').paused")
        await screenshot(page, "listen-page.png", tmp_path)

        await box.say("gamenight stop", box.host)
        await expect(page.locator("#play")).to_be_disabled()

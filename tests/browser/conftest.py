"""Real-browser fixtures: Debian's chromium driven by Playwright (never its bundled browsers).

Outside CI the tests skip when chromium is absent; under CI=true they install it (as root) or
fail. The browser may only reach loopback: every other host name resolves to nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright

from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing but loopback: a page that tried to load anything from the internet fails loudly.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def chromium_path() -> str:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if IN_CI:  # .ci/run installs it; a missing browser under CI is a failure, never a skip
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium); under CI=true this fails")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    chromium_path()
    async with async_playwright() as pw:
        yield pw


@pytest.fixture
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    launched = await playwright.chromium.launch(
        executable_path=chromium_path(),
        args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
    )
    try:
        yield launched
    finally:
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 420, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"the page threw: {errors}"


async def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """Save a screenshot in tmp_path; with SAVE_SCREENSHOTS=1 also under docs/ (README use)."""
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=True)
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        shutil.copy(path, DOCS / name)
    return path


# The whole bot against fake Discord and fake Spotify, and the HTTP API over the real Resolver
# and fake YouTube: the fixtures the other suites use, shared rather than copied.
from tests.bot.conftest import world  # noqa: E402
from tests.web.conftest import api, api_factory, catalog, spotify, youtube  # noqa: E402

__all__ = ["api", "api_factory", "catalog", "spotify", "world", "youtube"]

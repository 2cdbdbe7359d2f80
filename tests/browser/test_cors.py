"""The PWA runs on another origin: its JSON POST /song needs a CORS preflight, in a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from tests.fakes.youtube import FakeYouTube
from tests.pwa import TRACK_ID, track_body
from tests.web.conftest import VIDEO_ID, ApiFactory

pytestmark = pytest.mark.browser

FETCH_JS = """async ([url, body]) => {
  const response = await fetch(url, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  return [response.status, await response.text()];
}"""

# Plays a URL in an <audio> element of the page: its duration in seconds, or the error code.
PLAY_JS = """async (url) => {
  const audio = new Audio();
  const outcome = new Promise((resolve) => {
    audio.onloadedmetadata = () => resolve(["ok", audio.duration]);
    audio.onerror = () => resolve(["error", audio.error ? audio.error.code : 0]);
  });
  audio.src = url;
  return await outcome;
}"""


@pytest.fixture
async def pwa() -> AsyncIterator[TestServer]:
    """A page on another origin (another port), standing in for the PWA."""

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>PWA</title><p>PWA", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/", index)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server


async def test_pwa_on_another_origin_gets_a_stream_url(
    api_factory: ApiFactory, catalog: None, youtube: FakeYouTube, pwa: TestServer, page: Page
) -> None:
    methods: list[str] = []

    def record(app: web.Application) -> None:
        async def seen(request: web.Request, response: web.StreamResponse) -> None:
            methods.append(request.method)

        app.on_response_prepare.append(seen)

    api = await api_factory(extend=record)
    await page.goto(str(pwa.make_url("/")))
    status, text = await page.evaluate(FETCH_JS, [str(api.client.make_url("/song")), track_body()])

    assert status == 200
    url = text.replace('"', "")  # exactly what the PWA client does with the body
    assert url.startswith(f"{api.base_url}/v1/relay/")
    assert methods == ["OPTIONS", "POST"]  # the browser asked first, then sent the JSON

    # The PWA plays what it got, through our relay (cross-origin audio needs no CORS)...
    assert await page.evaluate(PLAY_JS, url) == ["ok", pytest.approx(3, abs=0.1)]
    # ...while YouTube's own URL, bound to the bot's address, does not play in the browser.
    cached = await api.storage.get_stream(TRACK_ID)
    assert cached is not None and f"id={VIDEO_ID}" in cached.stream_url
    refused = youtube.counts.stream_refusals
    assert (await page.evaluate(PLAY_JS, cached.stream_url))[0] == "error"
    assert youtube.counts.stream_refusals > refused

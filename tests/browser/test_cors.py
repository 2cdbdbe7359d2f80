"""The PWA runs on another origin: its JSON POST /song needs a CORS preflight, in a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from tests.pwa import track_body
from tests.web.conftest import VIDEO_ID, ApiFactory

pytestmark = pytest.mark.browser

FETCH_JS = """async ([url, body]) => {
  const response = await fetch(url, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  return [response.status, await response.text()];
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
    api_factory: ApiFactory, catalog: None, pwa: TestServer, page: Page
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
    assert url.startswith("http://127.0.0.1:")
    assert f"id={VIDEO_ID}" in url
    assert methods == ["OPTIONS", "POST"]  # the browser asked first, then sent the JSON

"""The audio relay: signed, expiring URLs; Range; streaming; re-extraction when YouTube refuses
a URL early; a listener who leaves ends the upstream fetch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web

from bot.web.services import RELAY
from bot.web.signing import RelaySigner
from tests.fakes.youtube import FakeYouTube
from tests.pwa import TRACK_ID, track_body
from tests.web.conftest import RELAY_SECRET, VIDEO_ID, Api, ApiFactory, seed_stream
from tests.web.socks import Socks5

pytestmark = pytest.mark.usefixtures("catalog")


async def relay_url(api: Api) -> str:
    response = await api.post_song(track_body())
    assert response.status == 200, await response.text()
    return (await response.text()).replace('"', "")


async def test_relay_plays_and_passes_range_through(api: Api, youtube: FakeYouTube) -> None:
    url = await relay_url(api)
    whole = youtube.audio(VIDEO_ID)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(url) as audio:
            assert audio.status == 200
            assert audio.headers["Content-Type"] == "audio/wav"
            assert int(audio.headers["Content-Length"]) == len(whole)
            assert await audio.read() == whole
        async with browser.get(url, headers={"Range": "bytes=1000-1999"}) as part:
            assert part.status == 206
            assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(whole)}"
            assert await part.read() == whole[1000:2000]
        async with browser.get(url, headers={"Range": f"bytes={len(whole) + 10}-"}) as bad:
            assert bad.status == 416  # the listener's own mistake, passed on


def tampered(url: str, path: str | None = None, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{parts.scheme}://{parts.netloc}{path or parts.path}?{urlencode(query)}"


@pytest.mark.parametrize(
    "change",
    [
        {"sig": "0" * 32},  # forged signature
        {"exp": str(int(time.time()) + 10 * 86400)},  # expiry pushed out
        {"path": "/v1/relay/0000000000000000000000"},  # another track with this signature
        {"sig": ""},
        {"sig": "é" * 32},  # non-ASCII: must be a 403, not a 500 from compare_digest
        {"exp": "soon"},
    ],
)
async def test_forged_relay_urls_are_403(
    api: Api, youtube: FakeYouTube, change: dict[str, str]
) -> None:
    url = await relay_url(api)
    fetches = youtube.counts.stream_fetches
    async with aiohttp.ClientSession() as browser, browser.get(tampered(url, **change)) as r:
        assert r.status == 403
        assert "invalid or has expired" in await r.text()
    assert youtube.counts.stream_fetches == fetches  # refused before anything was fetched


async def test_expired_relay_url_is_403(api_factory: ApiFactory, youtube: FakeYouTube) -> None:
    api = await api_factory(relay_ttl_s=1.0)
    url = await relay_url(api)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(url) as fresh:
            assert fresh.status == 200
        await asyncio.sleep(2.1)  # exp is whole seconds: past it for sure
        async with browser.get(url) as late:
            assert late.status == 403


def test_signer_checks_expiry_and_signature() -> None:
    now = [1000.0]
    signer = RelaySigner(RELAY_SECRET, "https://gn.example", ttl_s=60, clock=lambda: now[0])
    url = signer.url(TRACK_ID)
    query = parse_qs(urlsplit(url).query)
    exp, sig = query["exp"][0], query["sig"][0]
    assert url.startswith(f"https://gn.example/v1/relay/{TRACK_ID}?")
    assert signer.check(TRACK_ID, exp, sig)
    assert not signer.check("0" * 22, exp, sig)
    other = RelaySigner(b"another-secret-0123456789", "https://gn.example", clock=lambda: now[0])
    assert not other.check(TRACK_ID, exp, sig)
    now[0] += 61
    assert not signer.check(TRACK_ID, exp, sig)


async def test_raw_urls_setting_answers_youtubes_url(
    api_factory: ApiFactory, youtube: FakeYouTube
) -> None:
    api = await api_factory(raw_song_urls=True)
    url = await relay_url(api)
    assert url.startswith(f"{youtube.base_url}/videoplayback/{VIDEO_ID}.wav?")


async def test_youtube_refusing_early_re_extracts_once_and_updates_the_cache(
    api: Api, youtube: FakeYouTube
) -> None:
    url = await relay_url(api)
    before = await api.storage.get_stream(TRACK_ID)
    assert before is not None
    pages = youtube.counts.page_fetches
    youtube.refuse_streams = 1  # YouTube revokes the cached URL long before its expire
    async with aiohttp.ClientSession() as browser, browser.get(url) as audio:
        assert audio.status == 200
        assert await audio.read() == youtube.audio(VIDEO_ID)
    assert youtube.counts.page_fetches == pages + 1  # one re-extraction, no search
    after = await api.storage.get_stream(TRACK_ID)
    assert after is not None
    assert after.stream_url != before.stream_url
    assert after.video_url == before.video_url


async def test_refusals_at_once_share_one_re_extraction(api: Api, youtube: FakeYouTube) -> None:
    url = await relay_url(api)
    pages = youtube.counts.page_fetches
    youtube.revoke_streams()  # the cached URL, for all five, whatever order they arrive in
    async with aiohttp.ClientSession() as browser:

        async def listen() -> int:
            async with browser.get(url) as audio:
                await audio.read()
                return audio.status

        statuses = await asyncio.gather(*(listen() for _ in range(5)))
    assert statuses == [200] * 5
    assert youtube.counts.page_fetches == pages + 1


async def test_refused_again_after_re_extraction_is_502(api: Api, youtube: FakeYouTube) -> None:
    url = await relay_url(api)
    youtube.refuse_streams = 2
    async with aiohttp.ClientSession() as browser, browser.get(url) as audio:
        assert audio.status == 502
        assert "refused the request (HTTP 403)" in await audio.text()


class SlowAudio:
    """An audio source that sends its first chunk and then trickles; records when it ends."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()
        self.sent = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/webm"})
        response.content_length = 50_000_000
        await response.prepare(request)
        try:
            while self.sent < 50_000_000:
                await response.write(bytes(64 * 1024))
                self.sent += 64 * 1024
                await asyncio.sleep(0.01)
        finally:
            self.ended.set()
        return response


@asynccontextmanager
async def slow_audio(api: Api) -> AsyncIterator[tuple[SlowAudio, str]]:
    """A SlowAudio upstream seeded as TRACK_ID's stream; yields it and the track's relay URL."""
    source = SlowAudio()
    app = web.Application()
    app.router.add_get("/videoplayback", source.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        await seed_stream(api, TRACK_ID, f"http://127.0.0.2:{port}/videoplayback?expire=1999999999")
        yield source, api.signer.url(TRACK_ID)
    finally:
        await runner.cleanup()


async def test_listener_leaving_ends_the_upstream_fetch(api: Api) -> None:
    async with slow_audio(api) as (source, url), aiohttp.ClientSession() as browser:
        response = await browser.get(url)
        assert response.status == 200
        assert len(await response.content.readexactly(200_000)) == 200_000
        response.close()  # the listener closes the tab
        async with asyncio.timeout(10):
            await source.ended.wait()  # the relay dropped its upstream fetch too
        assert source.sent < 50_000_000


async def test_the_relay_follows_youtube_proxy(
    api_factory: ApiFactory, youtube: FakeYouTube
) -> None:
    # yt-dlp extracts through the proxy, so the stream URL is bound to the proxy's exit address:
    # the relay must fetch through it too (a SOCKS proxy here, which aiohttp needs help with).
    async with Socks5() as proxy:
        api = await api_factory(proxy=proxy.url)
        url = await relay_url(api)
        entry = await api.storage.get_stream(TRACK_ID)
        assert entry is not None and f"ip={proxy.source}" in entry.stream_url
        before = proxy.connections
        async with aiohttp.ClientSession() as browser, browser.get(url) as audio:
            assert audio.status == 200
            assert await audio.read() == youtube.audio(VIDEO_ID)
        assert proxy.connections > before


async def test_refused_again_within_the_cooldown_is_not_re_extracted(
    api: Api, youtube: FakeYouTube
) -> None:
    url = await relay_url(api)
    pages = youtube.counts.page_fetches
    youtube.refuse_streams = 10  # YouTube keeps refusing, whatever URL it handed out
    async with aiohttp.ClientSession() as browser:
        for _ in range(4):
            async with browser.get(url) as audio:
                assert audio.status == 502
    assert youtube.counts.page_fetches == pages + 1  # one re-extraction per cooldown, not four


async def test_head_is_refused_without_fetching_upstream(api: Api, youtube: FakeYouTube) -> None:
    url = await relay_url(api)
    fetches = youtube.counts.stream_fetches
    async with aiohttp.ClientSession() as browser, browser.head(url) as head:
        assert head.status == 405
    assert youtube.counts.stream_fetches == fetches


async def test_one_client_holds_a_bounded_number_of_streams(api: Api) -> None:
    cap = api.client.app[RELAY].slots.per_client
    async with slow_audio(api) as (_, url), aiohttp.ClientSession() as browser:
        held = [await browser.get(url) for _ in range(cap)]
        assert [r.status for r in held] == [200] * cap
        async with browser.get(url) as extra:
            assert extra.status == 429
        held.pop().close()  # one ends: its slot is free again
        async with asyncio.timeout(10):
            while api.client.app[RELAY].slots.held("127.0.0.1") >= cap:  # noqa: ASYNC110 - no event to await: the relay frees the slot when it sees the close
                await asyncio.sleep(0.02)
        again = await browser.get(url)
        assert again.status == 200
        again.close()
        for response in held:
            response.close()

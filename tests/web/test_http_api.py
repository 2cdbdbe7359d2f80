"""The HTTP API end to end: a real server on a socket, the real Resolver and SQLite storage,
the fake YouTube behind them; requests replay what the PWA client sends.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.web import RateLimit, create_app
from bot.web.services import SYNC_HEALTH
from core.sync.health import SyncHealth
from tests.fakes.youtube import FakeYouTube
from tests.pwa import PWA_ORIGIN, TRACK_ID, track_body
from tests.web.conftest import VIDEO_ID, Api, seed_stream

pytestmark = pytest.mark.usefixtures("catalog")


# --- the PWA's own requests ----------------------------------------------------------------


async def test_pwa_preflight_then_song_gives_a_url_that_plays(
    api: Api, youtube: FakeYouTube
) -> None:
    preflight = await api.client.options(
        "/song",
        headers={
            "Origin": PWA_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"].lower() == "content-type"
    assert int(preflight.headers["Access-Control-Max-Age"]) > 0

    response = await api.client.post(
        "/song",
        data=json.dumps(track_body()),
        headers={"Origin": PWA_ORIGIN, "Content-Type": "application/json"},
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    text = await response.text()
    assert text.startswith('"')
    assert text.endswith('"')
    url = text.replace('"', "")  # exactly what the PWA does
    # Our relay, signed and expiring: YouTube's own URL would not play away from the bot.
    assert url.startswith(f"{api.base_url}/v1/relay/{TRACK_ID}?")
    assert re.search(r"[?&]exp=\d+", url)
    assert re.search(r"[?&]sig=[0-9a-f]+", url)

    async with aiohttp.ClientSession() as browser, browser.get(url) as audio:
        assert audio.status == 200
        assert audio.headers["Content-Type"] == "audio/wav"
        assert (await audio.read())[:4] == b"RIFF"


async def test_second_song_request_is_a_cache_hit(api: Api, youtube: FakeYouTube) -> None:
    first = await api.post_song(track_body())
    searches = youtube.counts.searches
    memory_hits = api.resolver.stats.memory_hits
    second = await api.post_song(track_body())
    # The hit took the handler's fast path (the resolver's front cache, no await); its answer
    # is the full path's, byte for byte, headers included.
    assert api.resolver.stats.memory_hits == memory_hits + 1
    assert (second.status, await second.text()) == (first.status, await first.text())
    for header in ("Content-Type", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers"):
        assert second.headers.get(header) == first.headers.get(header)
    assert youtube.counts.searches == searches


async def test_download_song_streams_the_audio(api: Api) -> None:
    url = (await (await api.post_song(track_body())).text()).replace('"', "")
    async with aiohttp.ClientSession() as browser, browser.get(url) as direct:
        expected = await direct.read()

    response = await api.client.post(
        "/download_song", json=track_body(), headers={"Origin": PWA_ORIGIN}
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert int(response.headers["Content-Length"]) == len(expected)
    assert await response.read() == expected


async def test_download_song_passes_range_through(api: Api) -> None:
    url = (await (await api.post_song(track_body())).text()).replace('"', "")
    async with aiohttp.ClientSession() as browser, browser.get(url) as direct:
        whole = await direct.read()

    response = await api.client.post(
        "/download_song", json=track_body(), headers={"Range": "bytes=100-1099"}
    )
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert await response.read() == whole[100:1100]


# --- /download_song does not buffer --------------------------------------------------------


class GatedAudio:
    """An audio source that sends its first chunk, then waits for the test's go-ahead."""

    def __init__(self) -> None:
        self.first = b"RIFF" + bytes(60_000)
        self.rest = bytes(range(256)) * 400
        self.release = asyncio.Event()
        self.finished = False
        self.requests = 0
        self.client_supplied = 0

    async def count_client_supplied(self, request: web.Request) -> web.Response:
        self.client_supplied += 1
        return web.Response(body=b"not the song")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        response = web.StreamResponse(headers={"Content-Type": "audio/webm"})
        response.content_length = len(self.first) + len(self.rest)
        await response.prepare(request)
        await response.write(self.first)
        await self.release.wait()
        await response.write(self.rest)
        await response.write_eof()
        self.finished = True
        return response


async def test_download_song_relays_bytes_before_upstream_finishes(api: Api) -> None:
    source = GatedAudio()
    app = web.Application()
    app.router.add_get("/videoplayback", source.handle)
    app.router.add_get("/client-supplied", source.count_client_supplied)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        # The resolver hands out what its cache holds: this source's URL.
        base = f"http://127.0.0.1:{port}"
        await seed_stream(api, TRACK_ID, f"{base}/videoplayback?expire=1")
        # URLs in the body are the client's: never fetched.
        body = {
            **track_body(),
            "url": f"{base}/client-supplied",
            "coverImg": f"{base}/client-supplied",
        }
        response = await api.client.post("/download_song", json=body)
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/webm"
        received = b""
        while len(received) < len(source.first):
            chunk = await asyncio.wait_for(response.content.readany(), 10)
            assert chunk, "the body ended early"
            received += chunk
        # The client holds the whole first chunk while the source is still mid-response.
        assert not source.finished
        assert received == source.first
        source.release.set()
        assert received + await response.read() == source.first + source.rest
        assert source.requests == 1
        assert source.client_supplied == 0
    finally:
        source.release.set()
        await runner.cleanup()


# --- malformed input -----------------------------------------------------------------------


def _with(**changes: Any) -> dict[str, Any]:
    return {**track_body(), **changes}


def _without(key: str) -> bytes:
    body = track_body()
    del body[key]
    return json.dumps(body).encode()


def _j(**changes: Any) -> bytes:
    """The PWA's body with some fields changed, encoded."""
    return json.dumps(_with(**changes)).encode()


MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty body", b"", "Empty request body"),
    ("not json", b"id=4PTG3Z6ehGkBFwjybzWkR8", "not valid JSON"),
    ("truncated json", json.dumps(track_body()).encode()[:-5], "not valid JSON"),
    ("not utf-8", b'{"id": "\xff\xfe"}', "not valid JSON"),
    ("json array", b"[]", "must be a JSON object"),
    ("json string", b'"4PTG3Z6ehGkBFwjybzWkR8"', "must be a JSON object"),
    ("json null", b"null", "must be a JSON object"),
    ("missing id", _without("id"), "Missing track id"),
    ("empty id", _j(id=""), "Missing track id"),
    ("id is a number", _j(id=42), "'id' must be a string"),
    ("id too short", _j(id="4PTG3Z6ehGkBFwjybzWkR"), "Invalid track id"),
    ("id with a slash", _j(id="../../etc/passwd0000000"), "Invalid track id"),
    ("spotify uri as id", _j(id=f"spotify:track:{TRACK_ID}"), "Invalid track id"),
    ("missing name", _without("name"), "Missing track name"),
    ("blank name", _j(name="  "), "Missing track name"),
    ("name is a list", _j(name=["x"]), "'name' must be a string"),
    ("missing artists", _without("artistNames"), "Missing artists"),
    ("no artists", _j(artistNames=[]), "Missing artists"),
    ("blank artists", _j(artistNames=[""]), "Missing artists"),
    ("artists is a string", _j(artistNames="Rick Astley"), "must be a list of strings"),
    ("artists of numbers", _j(artistNames=[1, 2]), "must be a list of strings"),
    ("duration is text", _j(duration="3:33"), "'duration'"),
    ("negative duration", _j(duration=-1), "'duration'"),
    ("duration is true", _j(duration=True), "'duration'"),
    ("infinite duration", _j(duration=float("inf")), "'duration'"),
    ("force is text", _j(force="yes"), "'force' must be true or false"),
    ("isrc is a number", _j(isrc=123), "'isrc' must be a string"),
    ("album is an object", _j(albumName={}), "'albumName' must be a string"),
]  # fmt: skip


@pytest.mark.parametrize("path", ["/song", "/download_song"])
@pytest.mark.parametrize(
    ("body", "message"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
async def test_malformed_body_is_a_clear_400(
    api: Api, youtube: FakeYouTube, path: str, body: bytes, message: str
) -> None:
    response = await api.client.post(
        path, data=body, headers={"Content-Type": "application/json", "Origin": PWA_ORIGIN}
    )
    assert response.status == 400
    assert response.content_type == "text/plain"
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # the PWA can read it
    text = await response.text()
    assert message in text
    assert len(text) < 120
    assert "Traceback" not in text
    assert youtube.counts.searches == youtube.counts.page_fetches == 0


async def test_optional_fields_may_be_missing_null_or_empty(api: Api) -> None:
    body = {
        "id": TRACK_ID,
        "name": "Never Gonna Give You Up",
        "artistNames": ["Rick Astley"],
        "albumName": "",
        "duration": 213573,
        "isrc": None,
        "coverImg": "",
        "date": "",
        "force": None,
    }
    response = await api.post_song(body)
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("path", ["/song", "/download_song"])
async def test_huge_body_is_413(api: Api, path: str) -> None:
    body = _j(albumName="x" * 200_000)
    response = await api.client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.text()).strip() == "Request body too large (limit 64 KiB)."


async def test_wrong_method_and_unknown_path(api: Api) -> None:
    assert (await api.client.get("/song")).status == 405
    missing = await api.client.get("/nope", headers={"Origin": PWA_ORIGIN})
    assert missing.status == 404
    assert missing.headers["Access-Control-Allow-Origin"] == "*"


# --- upstream failures ---------------------------------------------------------------------


async def test_track_youtube_does_not_have_is_404(api: Api) -> None:
    body = _with(
        id="0000000000000000000000", name="Unfindable Song", artistNames=["Nobody"], isrc=""
    )
    response = await api.post_song(body)
    assert response.status == 404
    assert "No YouTube video matches" in await response.text()


async def test_youtube_failing_is_502(api: Api, youtube: FakeYouTube) -> None:
    youtube.page_status = 500
    response = await api.post_song(track_body())
    assert response.status == 502
    text = await response.text()
    assert "audio stream" in text
    assert "Traceback" not in text


async def test_audio_source_unreachable_is_502(api: Api) -> None:
    await seed_stream(api, TRACK_ID, "http://127.0.0.1:9/videoplayback?expire=1")  # closed port
    response = await api.client.post("/download_song", json=track_body())
    assert response.status == 502
    assert (await response.text()).strip() == "Could not reach the audio source; try again."


async def test_audio_source_answering_403_is_502(api: Api, youtube: FakeYouTube) -> None:
    forged = f"{youtube.base_url}{youtube.stream_path(VIDEO_ID)}?expire=1999999999&sig=forged"
    await seed_stream(api, TRACK_ID, forged)
    youtube.page_status = 500  # the one re-extraction after the 403 fails too
    response = await api.client.post("/download_song", json=track_body())
    assert response.status == 502
    assert "audio stream" in await response.text()


async def test_unexpected_error_is_a_generic_500_without_details(api_factory: Any) -> None:
    def add_broken_route(app: web.Application) -> None:
        async def broken(request: web.Request) -> web.Response:
            raise RuntimeError("secret internals at /srv/app.py line 3")

        app.router.add_get("/broken", broken)

    api = await api_factory(extend=add_broken_route)
    response = await api.client.get("/broken")
    assert response.status == 500
    text = await response.text()
    assert "Internal server error" in text
    assert "secret" not in text
    assert "RuntimeError" not in text


# --- v1 ------------------------------------------------------------------------------------


async def test_v1_track_describes_the_match(api: Api, youtube: FakeYouTube) -> None:
    url = (await (await api.post_song(track_body())).text()).replace('"', "")
    response = await api.client.get(f"/v1/tracks/{TRACK_ID}")
    assert response.status == 200
    data = await response.json()
    assert data["id"] == TRACK_ID
    assert url.startswith(f"{api.base_url}/v1/relay/")
    assert data["stream_url"].startswith(youtube.base_url + "/videoplayback/")
    assert data["video_url"].endswith(f"v={VIDEO_ID}")
    assert data["expires_at"] > data["resolved_at"] > 0
    assert data["match"]["title"]
    assert data["match"]["duration_s"] == pytest.approx(213, abs=1)


async def test_v1_stream_redirects_to_the_audio(api: Api) -> None:
    await api.post_song(track_body())
    response = await api.client.get(f"/v1/tracks/{TRACK_ID}/stream", allow_redirects=False)
    assert response.status == 307
    assert response.headers["Location"].startswith(f"{api.base_url}/v1/relay/{TRACK_ID}?")
    followed = await api.client.get(f"/v1/tracks/{TRACK_ID}/stream")
    assert followed.status == 200
    assert (await followed.read())[:4] == b"RIFF"


@pytest.mark.parametrize("bad", ["short", "4PTG3Z6ehGkBFwjybzWkR8x", "4PTG3Z6ehGkBFwjybzWk%21"])
@pytest.mark.parametrize("suffix", ["", "/stream"])
async def test_v1_invalid_id_is_400(api: Api, bad: str, suffix: str) -> None:
    response = await api.client.get(f"/v1/tracks/{bad}{suffix}", allow_redirects=False)
    assert response.status == 400
    assert "Invalid track id" in await response.text()


async def test_v1_bad_force_is_400(api: Api) -> None:
    response = await api.client.get(f"/v1/tracks/{TRACK_ID}?force=maybe")
    assert response.status == 400


# --- CORS ----------------------------------------------------------------------------------


async def test_cors_with_configured_origins(api_factory: Any) -> None:
    api = await api_factory(cors_origins=("https://pwa.example", "https://other.example/"))
    preflight_headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    allowed = await api.client.options(
        "/song", headers={"Origin": "https://other.example", **preflight_headers}
    )
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://other.example"
    assert "Origin" in allowed.headers["Vary"]

    refused = await api.client.options(
        "/song", headers={"Origin": "https://evil.example", **preflight_headers}
    )
    assert refused.status == 403
    assert "Access-Control-Allow-Origin" not in refused.headers

    answer = await api.client.post(
        "/song", json=track_body(), headers={"Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in answer.headers
    answer = await api.client.post(
        "/song", json=track_body(), headers={"Origin": "https://pwa.example"}
    )
    assert answer.headers["Access-Control-Allow-Origin"] == "https://pwa.example"
    assert "Content-Range" in answer.headers["Access-Control-Expose-Headers"]


async def test_preflight_for_unknown_path_is_404(api: Api) -> None:
    response = await api.client.options(
        "/nope", headers={"Origin": PWA_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert response.status == 404


# --- rate limit ----------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(api_factory: Any) -> None:
    api = await api_factory(rate_limit=RateLimit(rate=0.01, burst=3))
    for _ in range(2):
        assert (await api.post_song(track_body())).status == 200
    assert (await api.client.get(f"/v1/tracks/{TRACK_ID}")).status == 200
    refused = await api.post_song(track_body())
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) == 100
    assert (await refused.text()).strip() == "Too many requests: try again in 100 s."
    assert (await api.client.post("/download_song", json=track_body())).status == 429
    assert (await api.client.get(f"/v1/tracks/{TRACK_ID}/stream")).status == 429
    # Health and metrics are not rate limited.
    assert (await api.client.get("/healthcheck")).status == 200
    metrics = await (await api.client.get("/metrics")).text()
    assert "gamenight_http_rate_limited_total 3.0" in metrics


# --- health and metrics --------------------------------------------------------------------


async def test_healthcheck_up_and_down(api: Api) -> None:
    up = await api.client.get("/healthcheck")
    assert up.status == 200
    assert (await up.text()).strip() == "ok"
    await api.storage.aclose()
    down = await api.client.get("/healthcheck")
    assert down.status == 503
    assert "storage" in await down.text()


async def test_metrics_count_requests_and_resolutions(api: Api) -> None:
    await api.post_song(track_body())
    await api.post_song(track_body())
    await api.client.post("/song", data=b"nope")
    response = await api.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    assert 'gamenight_http_requests_total{method="POST",route="/song",status="200"} 2.0' in text
    assert 'gamenight_http_requests_total{method="POST",route="/song",status="400"} 1.0' in text
    assert 'gamenight_http_request_duration_seconds_count{route="/song"} 3.0' in text
    assert "gamenight_stream_cache_hits_total 1.0" in text
    assert "gamenight_stream_cache_misses_total 1.0" in text
    assert "gamenight_stream_searches_total 1.0" in text
    assert "gamenight_stream_extractions_total 1.0" in text
    assert "gamenight_stream_failures_total 0.0" in text


async def test_each_app_has_its_own_registry(api_factory: Any) -> None:
    first = await api_factory()
    second = await api_factory()
    await first.post_song(track_body())
    text = await (await second.client.get("/metrics")).text()
    assert 'route="/song"' not in text


async def test_healthcheck_reports_sync_write_failures_and_stalled_loops(api: Api) -> None:
    now = [100.0]
    health = SyncHealth(lambda: now[0], stall_after_s=30)
    app = create_app(storage=api.storage, resolver=api.resolver)
    app[SYNC_HEALTH] = health  # as the composition root does when sync loops run
    async with TestClient(TestServer(app)) as client:
        await _health_cycle(client, health, now)


async def _health_cycle(
    client: TestClient[web.Request, web.Application], health: SyncHealth, now: list[float]
) -> None:
    health.round_done(1)
    health.round_done(2)
    ok = await client.get("/healthcheck")
    assert ok.status == 200
    assert "sync loops: 2" in await ok.text()

    health.storage_failed(1, "storing the host snapshot", OSError("disk full"))
    now[0] += 12
    health.round_done(1)
    health.round_done(2)
    degraded = await client.get("/healthcheck")
    assert degraded.status == 200  # syncing goes on from memory: say so, stay in service
    assert "storage writes failing for 12 s (1 failed)" in await degraded.text()

    now[0] += 40
    health.round_done(1)  # guild 2's loop is stuck
    stalled = await client.get("/healthcheck")
    assert stalled.status == 503
    assert "stalled sync loops: 1" in await stalled.text()

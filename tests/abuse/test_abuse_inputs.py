"""Malformed and hostile input on every endpoint of the real server: never a 5xx, never an
ERROR log line, always a short answer that does not echo the client's bytes back."""

from __future__ import annotations

import asyncio
import gzip
import json

import aiohttp
import pytest

from tests.abuse.conftest import TRACK_ID, ErrorRecords, Target

JSON = {"Content-Type": "application/json"}
SONG_PATHS = ("/song", "/download_song")
GET_PATHS = (
    "/healthcheck",
    "/metrics",
    f"/v1/tracks/{TRACK_ID}",
    f"/v1/tracks/{TRACK_ID}/stream",
    "/spotify/callback",
    "/discord/callback",
    "/listen/" + "x" * 32,
    "/listen/" + "x" * 32 + "/events",
    "/listen/assets/listen.js",
)


def track(**fields: object) -> bytes:
    body: dict[str, object] = {"id": TRACK_ID, "name": "Song", "artistNames": ["Artist"]}
    body.update(fields)
    return json.dumps(body).encode()


HOSTILE_BODIES: list[tuple[str, bytes, int]] = [
    ("empty", b"", 400),
    ("not json", b"{not json", 400),
    ("invalid utf-8", b'{"id": "\xff\xfe"}', 400),
    ("array", b"[1, 2, 3]", 400),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, 413),
    ("nested within limit", b"[" * 30_000 + b"]" * 30_000, 400),
    ("lone surrogate name", track(name="\ud800"), 400),
    ("lone surrogate artist", track(artistNames=["ok", "\udfff"]), 400),
    ("escaped surrogate", track().replace(b'"Song"', b'"\\ud83d"'), 400),
    ("NUL in name", track(name="So\x00ng"), 400),
    ("control chars", track(name="a\r\nb"), 400),
    ("ANSI escape", track(albumName="\x1b[31mred"), 400),
    ("C1 control", track(name="a\x85b"), 400),
    ("50k name", track(name="n" * 50_000), 400),
    ("too many artists", track(artistNames=["a"] * 10_000), 400),
    ("wrong types", track(name=["x"], artistNames="a"), 400),
    ("huge number", track(duration=10**400), 400),
    ("NaN", track().replace(b'"Song"', b'"Song", "duration": NaN'), 400),
    ("bool force string", track(force="yes"), 400),
    ("bad id", track(id="../../etc/passwd"), 400),
    ("id with CRLF", track(id="a\r\nSet-Cookie: x=1"), 400),
    ("oversized", b'{"id": "' + b"a" * 70_000 + b'"}', 413),
    ("binary", bytes(range(256)) * 10, 400),
]


@pytest.mark.parametrize("path", SONG_PATHS)
async def test_abuse_hostile_bodies_get_a_4xx(
    target: Target, error_records: ErrorRecords, path: str
) -> None:
    for name, body, expected in HOSTILE_BODIES:
        status = await target.request("POST", path, data=body, **JSON)
        assert status == expected, (name, status)
    assert target.server_errors() == []
    assert error_records.lines() == []


async def test_abuse_compressed_bodies_are_refused_not_inflated(
    target: Target, error_records: ErrorRecords
) -> None:
    bomb = gzip.compress(b"0" * (16 << 20))  # 16 MiB of zeros in ~16 KiB
    for encoding in ("gzip", "deflate", "br", "zstd", "GZIP", "identity, gzip"):
        for path in (*SONG_PATHS, "/spotify/confirm"):
            status = await target.request(
                "POST", path, data=bomb, **JSON, **{"Content-Encoding": encoding}
            )
            assert status == 415, (path, encoding, status)
    assert target.server_errors() == []
    assert error_records.lines() == []


async def test_abuse_every_get_endpoint_survives_odd_requests(
    target: Target, error_records: ErrorRecords
) -> None:
    for path in GET_PATHS:
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            await target.request(method, path)
        await target.request("GET", path + "?" + "q=%00%0d%0a%ff&" * 200)
        await target.request("GET", path, data=b"x" * 1000, **{"Content-Encoding": "gzip"})
    for path in (
        "/" + "a" * 4000,
        "/v1/tracks/" + "%0d%0aX-Injected:%20yes",
        "/v1/tracks/" + "\u00e9" * 50,
        "/listen/%00",
        "/listen/assets/..%2f..%2fsettings.py",
        "/spotify/callback?state=" + "s" * 5000 + "&code=c&error=" + "%0d%0aFAKE" * 100,
        "/discord/callback?state=%ff%fe&code=%00",
    ):
        status = await target.request("GET", path)
        assert status < 500, path
    assert target.server_errors() == []
    assert error_records.lines() == []


async def test_abuse_long_text_is_not_echoed_back(target: Target) -> None:
    long_id = "Z" * 5000
    for path in (f"/v1/tracks/{long_id}", f"/listen/{long_id}", f"/{long_id}"):
        status, answer = await target.raw(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        assert status is not None and 400 <= status < 500, path
        body = answer.split(b"\r\n\r\n", 1)[1]
        assert len(body) < 1000 and long_id.encode() not in body


RAW_GARBAGE: list[bytes] = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    b"G\x00T / HTTP/1.1\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # request line too long
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",  # header too long
    b"GET / HTTP/1.1\r\n" + b"X-H: v\r\n" * 200 + b"\r\n",  # too many headers
    b"POST /song HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /song HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
    b"POST /song HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
    b"POST /song HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3"
    b"\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Inject: a\rb\r\n\r\n",
    bytes(range(256)),
]
# Blank lines before a request line are allowed (RFC 9112 §2.2): the server rightly waits for
# the request (until the header deadline), so these get no answer, not a 400.
BLANK_LINES = b"\r\n\r\n\r\n"


async def test_abuse_protocol_garbage_gets_a_short_400_without_echo(
    target: Target, error_records: ErrorRecords
) -> None:
    for data in RAW_GARBAGE:
        status, answer = await target.raw(data)
        # An answer, not a hang-up: a 400 with a short plain body of our own words.
        assert status == 400, (data[:40], answer[:200])
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"text/plain" in head.lower(), head
        assert 0 < len(body) < 200, answer[:300]
        assert b"aaaa" not in body and b"bbbb" not in body  # no echo of the request
        assert b"Traceback" not in body
    try:
        waited = await target.raw(BLANK_LINES, within=0.5)
    except TimeoutError:
        waited = (None, b"")  # still waiting for the request line: right
    assert waited == (None, b"")
    assert target.server_errors() == []
    assert error_records.lines() == []


async def test_abuse_client_leaving_mid_body_is_not_an_error(
    target: Target, error_records: ErrorRecords
) -> None:
    for path in SONG_PATHS:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 5000\r\n\r\n"
        ).encode()
        for _ in range(5):
            _reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
            writer.write(head + b'{"id": "' + b"a" * 100)
            await writer.drain()
            writer.transport.abort()  # gone mid-body
    status = await target.request("GET", "/healthcheck")
    assert status == 200
    metrics = await _metrics(target)
    assert 'status="500"' not in metrics
    assert error_records.lines() == []


async def _metrics(target: Target) -> str:
    async with aiohttp.ClientSession() as http, http.get(target.base + "/metrics") as response:
        return await response.text()

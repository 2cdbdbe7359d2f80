"""Streams audio from a resolved stream URL to the client, chunk by chunk, Range included.

Only URLs the resolver produced come here (never one a client sent). Bytes are passed through
undecoded and unbuffered: the first chunk reaches the client while upstream is still sending.
Memory per listener is one chunk; a listener who leaves ends the upstream fetch at once.

The fetch goes out the way yt-dlp's extraction did (same proxy, same source address: the
app's HTTP client is built with it): a stream URL only plays for the address that extracted it.
When YouTube refuses a URL before its `expire` anyway (403), `refetch` gets a fresh one (the
resolver re-extracts from the cached video) and the relay tries once more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
from aiohttp import web

from bot.web.cors import before_stream
from core.errors import UserFacingError

log = logging.getLogger(__name__)

# Bytes are relayed as they arrive, at most this much at a time (and the upstream reader buffers
# about as much): bounded memory per listener, few enough Python iterations per megabyte.
CHUNK = 256 * 1024
# Request headers worth forwarding: partial content and its validator.
FORWARDED = ("Range", "If-Range")
# Response headers passed back; Content-Encoding too, since the bytes are relayed undecoded.
RETURNED = (
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "Content-Encoding",
    "ETag",
    "Last-Modified",
)
# Slow first byte is normal for googlevideo; a stalled transfer is not.
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
# A listener whose player stopped reading (paused tab, dead phone) is gone after this long:
# otherwise its socket and our upstream connection would be held for ever.
WRITE_TIMEOUT_S = 30.0


async def write_within(
    request: web.Request, response: web.StreamResponse, chunk: bytes, deadline_s: float
) -> None:
    """Write `chunk`; if the client takes none of it for `deadline_s`, close its connection
    and raise ConnectionResetError (what a client that left would have raised)."""
    try:
        async with asyncio.timeout(deadline_s):
            await response.write(chunk)
    except TimeoutError:
        response.force_close()
        if request.transport is not None:
            request.transport.abort()  # close() would wait to flush to a client not reading
        raise ConnectionResetError("the client stopped reading") from None


# A stream URL and the request headers to fetch it with.
Source = tuple[str, Sequence[tuple[str, str]]]


class AudioSourceFailed(UserFacingError):
    http_status = 502


class AudioSourceTimeout(UserFacingError):
    http_status = 504


async def _open(
    request: web.Request, client: aiohttp.ClientSession, source: Source, proxy: str | None
) -> aiohttp.ClientResponse:
    url, extracted_with = source
    # As yt-dlp would fetch it (its User-Agent etc.), plus the listener's Range.
    headers = dict(extracted_with)
    headers.update((name, request.headers[name]) for name in FORWARDED if name in request.headers)
    try:
        return await client.get(url, headers=headers, timeout=TIMEOUT, proxy=proxy)
    except TimeoutError:
        raise AudioSourceTimeout("The audio source did not answer in time; try again.") from None
    except aiohttp.ClientError as exc:
        log.warning("audio source unreachable for %s: %s", request.path, exc)
        raise AudioSourceFailed("Could not reach the audio source; try again.") from None


async def relay(
    request: web.Request,
    client: aiohttp.ClientSession,
    source: Source,
    *,
    proxy: str | None = None,
    refetch: Callable[[], Awaitable[Source | None]] | None = None,
) -> web.StreamResponse:
    """Relay `source` (a stream URL and the request headers it was extracted with)."""
    upstream = await _open(request, client, source, proxy)
    if upstream.status == 403 and refetch is not None:
        upstream.release()
        fresh = await refetch()
        if fresh is not None:
            upstream = await _open(request, client, fresh, proxy)

    async with upstream:
        # 416 (bad Range) is the client's own mistake: pass it on with its Content-Range.
        if upstream.status >= 400 and upstream.status != 416:
            log.warning("audio source answered %d for %s", upstream.status, request.path)
            raise AudioSourceFailed(
                f"The audio source refused the request (HTTP {upstream.status}); try again later."
            )
        response = web.StreamResponse(status=upstream.status)
        for name in RETURNED:
            if name in upstream.headers:
                response.headers[name] = upstream.headers[name]
        before_stream(request, response)
        await response.prepare(request)
        try:
            async for chunk, _ in upstream.content.iter_chunks():
                await write_within(request, response, chunk, WRITE_TIMEOUT_S)
        except ConnectionResetError:
            # The listener closed the tab or skipped the song: nothing left to do.
            log.debug("client left during %s", request.path)
            return response
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Headers are sent, so no error response is possible. Closing the connection before
            # the body's end (Content-Length or the last chunk) is how the client learns that
            # the body is incomplete; a normal return would send the chunked terminator.
            log.warning("audio source broke off during %s: %r", request.path, exc)
            response.force_close()
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response

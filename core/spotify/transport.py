"""Blocking spotipy calls in a bounded thread pool, with timeouts the event loop never waits on.

Why spotipy is configured like this:
- Its own retries are OFF: with them on it sleeps through Retry-After (up to hours) inside the
  worker thread, and once they run out every status surfaces as 429 "Max Retries". Each thread
  gets its own requests.Session with a plain HTTPAdapter (no Retry), so statuses come back as
  they are and the AppLimiter decides about waiting.
- It has no base-URL argument: `prefix` is set to `api_base + "/v1/"`.
- It has no locks and keeps the token on the client object, so every worker thread has its own
  spotipy.Spotify and sets the token for the call it runs (threads run one call at a time).

Hung calls: a Python thread cannot be killed. The caller stops waiting after `call_timeout`
(Upstream(timeout=True)) while the thread keeps its slot until the socket times out
(`socket_timeout`, a little longer than call_timeout), so a hang costs one slot for a bounded
time. Slots are counted by an asyncio semaphore released when the thread really finishes, never
when the caller gives up: capacity is never over-promised and the executor queue never grows.
When every slot is held by a hung call, new callers wait (asynchronously) and time out too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import requests
import spotipy
from requests.adapters import HTTPAdapter

from core.errors import Upstream

T = TypeVar("T")
log = logging.getLogger(__name__)

# spotipy logs request headers (Bearer tokens) and token-request bodies at DEBUG, and an ERROR
# for every HTTP error this layer already maps and logs; never let those through.
logging.getLogger("spotipy").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Timed(Generic[T]):
    value: T
    sent_at: float  # local clock when the worker thread started the request
    answered_at: float  # ... and when it had the answer (both stamped in the thread)


class SpotipyPool:
    def __init__(
        self,
        api_base: str,
        *,
        max_workers: int,
        call_timeout: float,
        socket_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._prefix = api_base.rstrip("/") + "/v1/"
        self._call_timeout = call_timeout
        self._socket_timeout = socket_timeout
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="spotipy")
        self._slots = asyncio.Semaphore(max_workers)
        self._local = threading.local()
        self.in_use = 0  # threads running a call, including ones whose caller gave up

    def _client(self) -> spotipy.Spotify:
        client: spotipy.Spotify | None = getattr(self._local, "client", None)
        if client is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            client = spotipy.Spotify(
                requests_session=session,
                requests_timeout=(min(3.0, self._socket_timeout), self._socket_timeout),
                retries=0,
                status_retries=0,
            )
            client.prefix = self._prefix
            self._local.client = client
        return client

    def _run(self, token: str, call: Callable[[spotipy.Spotify], T]) -> Timed[T]:
        client = self._client()
        client.set_auth(token)
        # Stamped here, in the thread, around the request itself: what the event loop was busy
        # with before and after (hundreds of calls at once) is not part of the round trip the
        # sync engine learns each listener's latency from.
        sent_at = self._clock()
        try:
            value = call(client)
        finally:
            client.set_auth(None)
        return Timed(value, sent_at, self._clock())

    async def call(self, token: str, call: Callable[[spotipy.Spotify], T]) -> Timed[T]:
        """Run `call(spotify)` in a worker thread; Upstream(timeout=True) after call_timeout."""
        loop = asyncio.get_running_loop()
        limit = self._call_timeout
        deadline = loop.time() + limit
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
        # arrives as the inner await completes, and a cancelled sync loop then runs on.
        try:
            async with asyncio.timeout(limit):
                await self._slots.acquire()
        except TimeoutError:
            raise Upstream("Spotify did not answer in time.", timeout=True) from None
        self.in_use += 1

        def finished(_: Future[Timed[T]]) -> None:
            # RuntimeError: the loop closed while a hung thread was still out.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._release)

        future = self._executor.submit(self._run, token, call)
        future.add_done_callback(finished)
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            log.warning("Spotify call timed out after %.1f s; its thread is still out", limit)
            raise Upstream("Spotify did not answer in time.", timeout=True) from None

    def _release(self) -> None:
        self.in_use -= 1
        self._slots.release()

    def close(self) -> None:
        """Stop accepting calls; running threads finish on their own (socket timeouts)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

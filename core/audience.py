"""Browser audience counts shared through storage, for status messages posted elsewhere.

Browsers on the listen page reach whichever process serves HTTP (with compose: the web
replica), while the status message in Discord is posted by the shard running the game night.
So the count cannot live in one process's memory:

- `AudiencePublisher` (every process that serves listen pages) writes this process's count
  per guild to storage when it changes, and again every third of its time to live while
  browsers stay, so the count of a process that dies lapses by itself;
- `AudienceWatch` (every bot process) reads the summed count of the game nights whose loops
  run here every few seconds and reports a change, so the status message shows browsers that
  another process serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable

from core.stopping import stop_task
from storage.base import AudienceStore

log = logging.getLogger(__name__)

AUDIENCE_TTL_S = 30.0  # a dead process's browsers are counted at most this long
WATCH_INTERVAL_S = 3.0  # how soon a status message shows another process's browsers


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class AudiencePublisher:
    """Writes this process's browser counts (from `ListenAlong.watch_audience`) to storage."""

    def __init__(self, store: AudienceStore, *, ttl_s: float = AUDIENCE_TTL_S) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self.process = process_name()
        self._counts: dict[int, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def changed(self, guild_id: int, count: int) -> None:
        """A browser arrived or left (a `watch_audience` callback: sync, never raises)."""
        self._counts[guild_id] = count
        self._wake.set()
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="audience-publisher")

    async def _run(self) -> None:
        # One writer, reading the counts as they are when it writes: a burst of page loads is
        # one write per guild, and writes never land out of order.
        while not self._closed:
            # Not asyncio.timeout/wait_for: on 3.11 both can swallow a cancel that comes as the
            # wait times out, and the writer would outlive aclose() (seen in the tests).
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({woken}, timeout=self._ttl_s / 3)
            finally:
                woken.cancel()
            self._wake.clear()
            await self._write()

    async def _write(self) -> None:
        for guild_id, count in list(self._counts.items()):
            try:
                await self._store.set_audience(guild_id, self.process, count, self._ttl_s)
            except Exception as exc:  # storage trouble: the next round writes it again
                log.warning(
                    "could not store the listen-page audience of guild %s: %r", guild_id, exc
                )
                continue
            if count == 0 and self._counts.get(guild_id) == 0:
                del self._counts[guild_id]

    async def aclose(self) -> None:
        self._closed = True
        await stop_task(self._task)
        self._task = None
        # This process's browsers are gone with it: say so now rather than at the TTL.
        self._counts = dict.fromkeys(self._counts, 0)
        with contextlib.suppress(Exception):
            await self._write()


class AudienceWatch:
    """Reports the stored audience of `guilds()` to `on_change` whenever it changes."""

    def __init__(
        self,
        store: AudienceStore,
        guilds: Callable[[], Awaitable[Iterable[int]]],
        on_change: Callable[[int, int], object],
        *,
        interval_s: float = WATCH_INTERVAL_S,
        shown: Callable[[int], int | None] = lambda guild_id: None,
    ) -> None:
        """`shown(guild_id)`: the count on display, when the display knows it. It is what a
        stored count is compared with then: a message rendered for another reason (a track
        change) may show a browser that came and went between two looks, which the watch's
        own memory never saw, so it would not report the browser gone."""
        self._store = store
        self._guilds = guilds
        self._on_change = on_change
        self._shown = shown
        self._interval_s = interval_s
        self._seen: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="audience-watch")

    async def check(self) -> None:
        """One look: report every guild whose count differs from the last one seen."""
        seen: dict[int, int] = {}
        for guild_id in await self._guilds():
            count = await self._store.get_audience(guild_id)
            seen[guild_id] = count
            before = self._shown(guild_id)
            if count != (self._seen.get(guild_id, 0) if before is None else before):
                self._on_change(guild_id, count)
        self._seen = seen

    async def _run(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except Exception as exc:  # storage trouble: look again next time
                log.warning("could not read the listen-page audience: %r", exc)

    async def aclose(self) -> None:
        self._closed = True
        await stop_task(self._task)
        self._task = None

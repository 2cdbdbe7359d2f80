"""Reporting: what a guild's sync loop shows and tells people, sent off the loop's path.

The loop never awaits Discord. It hands its reports to the guild's `Reporter`, whose own task
sends them through the bot's `Announcer` (the status message, private notices, the end of a
session), each call bounded by a timeout. Status reports coalesce: only the latest one is sent,
at most once per `interval_s`, so a burst of changes costs one message edit. discord.py sleeps
through 429s and retries 5xx for up to ~25 s; while it does, the loop keeps polling and
commanding, and the lease keeps being renewed by its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from core.tracks import TrackInfo
from storage.records import ListenerState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlaybackReport:
    """What the status message shows about the host's playback and the listeners."""

    guild_id: int
    host_user_id: int
    track: TrackInfo | None
    is_playing: bool
    listeners: tuple[ListenerState, ...]
    host_unreadable: bool = False  # the host's link is dead: neither playing nor paused


class Announcer(Protocol):
    """What the bot supplies to show the engine's work in Discord (core never imports discord)."""

    async def status_changed(self, report: PlaybackReport) -> None:
        """Edit the session's status message (never post one: only the bot's start does)."""
        ...

    async def notify_user(self, guild_id: int, user_id: int, message: str) -> None:
        """Tell one user, privately, something only they can fix (relink, open Spotify)."""
        ...

    async def session_ended(self, guild_id: int, reason: str) -> None:
        """The engine ended the session on its own (host idle): end it for everyone and say so.
        The engine deletes the stored session itself if it is still there."""
        ...

    async def session_gone(self, guild_id: int) -> None:
        """The session vanished from storage without an end anyone reported: mark its status
        message ended, so no live Join/Leave buttons are left behind."""
        ...


class Reporter:
    """One guild's outbox to the `Announcer`, drained by its own task."""

    def __init__(
        self,
        guild_id: int,
        announcer: Announcer,
        *,
        clock: Callable[[], float],
        interval_s: float = 3.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.guild_id = guild_id
        self._announcer = announcer
        self._clock = clock
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._status: PlaybackReport | None = None
        self._notices: deque[tuple[int, str]] = deque()
        self._ending: tuple[str, str] | None = None  # ("ended", reason) or ("gone", "")
        self._shown_at = float("-inf")
        self._pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- for the loop: none of these wait ----------------------------------------------------

    def show(self, report: PlaybackReport) -> None:
        self._status = report  # the latest wins
        self._kick()

    def tell(self, user_id: int, message: str) -> None:
        self._notices.append((user_id, message))
        self._kick()

    def end(self, reason: str) -> None:
        self._ending = ("ended", reason)
        self._kick()

    def gone(self) -> None:
        if self._ending is None:
            self._ending = ("gone", "")
        self._kick()

    @property
    def idle(self) -> bool:
        return self._status is None and not self._notices and self._ending is None

    def _kick(self) -> None:
        if self._closed:
            return
        self._pending.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"report-{self.guild_id}")

    # -- the task ----------------------------------------------------------------------------

    async def _drain(self) -> None:
        while not self.idle:
            self._pending.clear()
            while self._notices:
                user_id, message = self._notices.popleft()
                await self._call(
                    "telling a user", self._announcer.notify_user(self.guild_id, user_id, message)
                )
            if self._ending is not None:
                kind, reason = self._ending
                self._ending = None
                self._status = None  # the end supersedes any playback report
                if kind == "ended":
                    await self._call(
                        "reporting the end", self._announcer.session_ended(self.guild_id, reason)
                    )
                else:
                    await self._call(
                        "reporting a vanished session", self._announcer.session_gone(self.guild_id)
                    )
                continue
            if self._status is not None:
                wait = self._shown_at + self._interval_s - self._clock()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._pending.wait()  # a DM or an end does not wait
                    continue
                report, self._status = self._status, None
                self._shown_at = self._clock()
                await self._call(
                    "updating the status message", self._announcer.status_changed(report)
                )

    async def _call(self, what: str, call: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await call
        except TimeoutError:
            log.warning(
                "guild %s: %s took over %.0f s; dropped", self.guild_id, what, self._timeout_s
            )
        except Exception:
            log.exception("guild %s: %s failed", self.guild_id, what)

    async def aclose(self, drain_s: float = 2.0) -> None:
        """Send what is queued (for at most `drain_s`), then stop."""
        self._closed = True
        task = self._task
        if task is None or task is asyncio.current_task():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_s):
                await asyncio.shield(task)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""Member names for the listen page, without a Discord call per page event.

With the members intent discord.py's cache knows every member; without it (or before the
cache fills) a name is fetched once (GET /users/{id}) in the background and kept, so the page
shows "someone" for at most a second and never asks Discord again for that person.
"""

from __future__ import annotations

import asyncio
import logging

import discord

log = logging.getLogger(__name__)

MAX_KEPT = 4096  # names kept; a bot in many guilds forgets the oldest


class MemberNames:
    """`names(user_id)` for bot/web/listen.py: a cached name, or None while it is fetched."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client
        self._known: dict[int, str | None] = {}  # None: fetched and failed, do not retry
        self._fetching: dict[int, asyncio.Task[None]] = {}

    def __call__(self, user_id: int) -> str | None:
        user = self._client.get_user(user_id)
        if user is not None:
            return user.display_name
        if user_id in self._known:
            return self._known[user_id]
        if user_id not in self._fetching:
            self._fetching[user_id] = asyncio.create_task(self._fetch(user_id))
        return None

    async def _fetch(self, user_id: int) -> None:
        try:
            user = await self._client.fetch_user(user_id)
            name: str | None = user.display_name
        except Exception as exc:  # a missing name must never break the page's events
            log.info("could not fetch the name of user %s: %r", user_id, exc)
            name = None
        finally:
            self._fetching.pop(user_id, None)
        if len(self._known) >= MAX_KEPT:
            self._known.pop(next(iter(self._known)))
        self._known[user_id] = name

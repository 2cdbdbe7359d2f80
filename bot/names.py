"""Member names for the listen page, without a Discord call per page event.

The page names people as the server shows them (the member's nickname, else their display
name), the same name Discord renders for the status board's `<@id>` mentions. The member cache
answers first (full with the members intent); otherwise the member is fetched once
(GET /guilds/{guild}/members/{user}) in the background and kept, so the page shows "someone"
for about a second. A failed fetch (a member who left, Discord unreachable) is kept only for
RETRY_AFTER seconds, then tried again; at most MAX_KEPT names and MAX_FETCHING fetches are held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import discord

log = logging.getLogger(__name__)

MAX_KEPT = 4096  # names kept; a bot in many guilds forgets the least recently asked
MAX_FETCHING = 32  # fetches in flight; more people wait for the next page event
KEEP_FOR = 3600.0  # a fetched nickname is asked again after an hour (people rename)
RETRY_AFTER = 60.0  # a failed fetch is tried again after a minute, not never


class MemberNames:
    """`names(guild_id, user_id)` for bot/web/listen.py: a name, or None while it is fetched."""

    def __init__(
        self, client: discord.Client, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._clock = clock
        # (guild, user) -> (name or None when the fetch failed, when to ask Discord again)
        self._known: OrderedDict[tuple[int, int], tuple[str | None, float]] = OrderedDict()
        self._fetching: dict[tuple[int, int], asyncio.Task[None]] = {}

    def __call__(self, guild_id: int, user_id: int) -> str | None:
        guild = self._client.get_guild(guild_id)
        member = guild.get_member(user_id) if guild is not None else None
        if member is not None:
            return member.display_name
        key = (guild_id, user_id)
        kept = self._known.get(key)
        if kept is not None:
            self._known.move_to_end(key)
            name, until = kept
            if self._clock() < until:
                return name
        if key not in self._fetching and len(self._fetching) < MAX_FETCHING:
            self._fetching[key] = asyncio.create_task(self._fetch(guild, key))
        return kept[0] if kept is not None else None  # a stale name beats "someone"

    async def _fetch(self, guild: discord.Guild | None, key: tuple[int, int]) -> None:
        try:
            if guild is not None:
                name: str | None = (await guild.fetch_member(key[1])).display_name
            else:  # a guild the cache does not know (yet): the account's own name
                name = (await self._client.fetch_user(key[1])).display_name
            until = self._clock() + KEEP_FOR
        except Exception as exc:  # a missing name must never break the page's events
            log.info("could not fetch the name of user %s in guild %s: %r", key[1], key[0], exc)
            name = (self._known.get(key) or (None, 0.0))[0]  # keep a name we had
            until = self._clock() + RETRY_AFTER
        finally:
            self._fetching.pop(key, None)
        self._known[key] = (name, until)
        self._known.move_to_end(key)
        while len(self._known) > MAX_KEPT:
            self._known.popitem(last=False)

"""Who a Discord user is, for the link confirmation page, in every role.

A process with a gateway has discord.py's client: its cache, then its REST call. The web-only
role (`python -m bot web`) has no client, so `DiscordDirectory` asks Discord's REST API
directly with the bot token over the shared aiohttp session: GET /users/{id} names the person,
GET /oauth2/applications/@me gives the application id that Discord's own OAuth (`identify`)
needs. Either way a lookup is bounded (`LOOKUP_TIMEOUT_S`) and never fails the page: a
timeout, a refused token, a 429 or an outage leaves the page with the bare id, logged once.
https://discord.com/developers/docs/resources/user#get-user
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from bot.web.linking import Person, WhoIs

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT_S = 3.0  # the person is waiting on the page; a bare id beats a slow page
CDN = "https://cdn.discordapp.com"
APP_ID_RETRY_S = 30.0  # between tries to learn the application id after a failed one


def bounded_who(lookup: Callable[[int], Awaitable[Person]]) -> WhoIs:
    """`lookup` within LOOKUP_TIMEOUT_S; None (and one WARNING until it works again) on any
    failure: a name on the page is a courtesy, the state and form token protect the link."""
    failing = False

    async def who(user_id: int) -> Person | None:
        nonlocal failing
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                person = await lookup(user_id)
        except Exception as exc:
            if not failing:
                log.warning("could not ask Discord who user %s is: %r", user_id, exc)
            failing = True
            return None
        failing = False
        return person

    return who


def person_of(user: dict[str, object]) -> Person:
    """A Person from a Discord user object, named and pictured as Discord shows them."""
    user_id = int(str(user["id"]))
    name = str(user["username"])
    shown = user.get("global_name") or name
    avatar = user.get("avatar")
    if isinstance(avatar, str) and avatar:
        ext = "gif" if avatar.startswith("a_") else "png"
        url = f"{CDN}/avatars/{user_id}/{avatar}.{ext}"
    else:  # the default avatar of accounts without a discriminator
        url = f"{CDN}/embed/avatars/{(user_id >> 22) % 6}.png"
    return Person(f"{shown} (@{name})", url)


class DiscordDirectory:
    """Discord's REST API with the bot token, without a gateway connection."""

    def __init__(self, http: aiohttp.ClientSession, api_base: str, token: str) -> None:
        self._http = http
        self._api = api_base.rstrip("/")
        self._headers = {"Authorization": f"Bot {token}"}
        self._application_id: int | None = None
        self._tried_at = -APP_ID_RETRY_S
        self._loading: asyncio.Task[int | None] | None = None

    async def _get(self, path: str) -> dict[str, object]:
        # No retry and no sleeping on a 429: the caller falls back at once.
        async with self._http.get(self._api + path, headers=self._headers) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=path
                )
            data = await response.json(content_type=None)
        if not isinstance(data, dict):
            raise ValueError(f"{path} did not answer a JSON object")
        return data

    async def person(self, user_id: int) -> Person:
        return person_of(await self._get(f"/users/{int(user_id)}"))

    async def load_application_id(self) -> int | None:
        """Ask Discord for the application id; None (logged) when it does not say."""
        self._tried_at = time.monotonic()
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                app = await self._get("/oauth2/applications/@me")
            self._application_id = int(str(app["id"]))
        except Exception as exc:
            log.warning(
                "could not read the application id from Discord (%r): the link page cannot "
                "ask Discord who confirms until it can",
                exc,
            )
            return None
        return self._application_id

    def application_id(self) -> int | None:
        """The application id once known; while unknown, a new try in the background."""
        # A try in flight set _tried_at when it began (and ends within LOOKUP_TIMEOUT_S).
        if self._application_id is None and time.monotonic() - self._tried_at >= APP_ID_RETRY_S:
            self._loading = asyncio.get_running_loop().create_task(self.load_application_id())
        return self._application_id

    async def aclose(self) -> None:
        if self._loading is not None:
            self._loading.cancel()

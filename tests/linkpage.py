"""Acting as the browser on the link confirmation page (without a real browser)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import aiohttp

_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def confirm_form(page: str) -> dict[str, str]:
    """The hidden fields (state, token) of the confirmation page's form."""
    fields = dict(_HIDDEN.findall(page))
    assert {"state", "token"} <= set(fields), f"no confirmation form in: {page[:300]}"
    return fields


def confirm_url(callback_url: str) -> str:
    parts = urlsplit(callback_url)
    return f"{parts.scheme}://{parts.netloc}/spotify/confirm"


async def press(
    callback_url: str, page: str, action: str = "link", **changes: str
) -> tuple[int, str]:
    """Press Link or Cancel on the confirmation `page`; `changes` alter the posted fields.

    A redirect (to Discord's consent page) is not followed: its status and Location return.
    """
    form = {**confirm_form(page), "action": action, **changes}
    async with (
        aiohttp.ClientSession() as http,
        http.post(confirm_url(callback_url), data=form, allow_redirects=False) as response,
    ):
        if 300 <= response.status < 400:
            return response.status, response.headers["Location"]
        return response.status, await response.text()


async def follow_and_confirm(callback: str, redirect: str) -> tuple[int, str]:
    """GET the callback the consent page redirected to, then press Link if it asks."""
    async with aiohttp.ClientSession() as http, http.get(redirect) as response:
        status, page = response.status, await response.text()
    if status != 200 or "Link this Spotify account?" not in page:
        return status, page
    return await press(callback, page)

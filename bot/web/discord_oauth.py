"""Discord's own OAuth2 (`identify` scope): who is the person in this browser?

Used by the link confirmation page when the operator set DISCORD_CLIENT_SECRET: the browser is
sent to Discord's consent page, comes back to GET /discord/callback with a code, and the code
buys one token that reads /users/@me. Only the user id is used; the token is thrown away.
https://discord.com/developers/docs/topics/oauth2#authorization-code-grant
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import aiohttp

log = logging.getLogger(__name__)

CALLBACK_PATH = "/discord/callback"
TIMEOUT = aiohttp.ClientTimeout(total=10)


class IdentifyFailed(Exception):
    """Discord did not tell us who the user is (refused code, outage, odd answer)."""

    def __init__(self, reason: str, bad_code: bool = False) -> None:
        super().__init__(reason)
        self.bad_code = bad_code  # Discord refused the code itself: the client's doing


@dataclass(frozen=True)
class DiscordOAuth:
    client_id: Callable[[], int | None]  # the application id, known once the bot logged in
    client_secret: str = field(repr=False)
    api_base: str  # https://discord.com/api/v10
    redirect_uri: str  # PUBLIC_BASE_URL + /discord/callback

    @property
    def origin(self) -> str:
        parts = urlsplit(self.api_base)
        return f"{parts.scheme}://{parts.netloc}"

    def authorize_url(self, state: str) -> str | None:
        """Discord's consent page for `identify`; None while the application id is unknown."""
        client_id = self.client_id()
        if client_id is None:
            return None
        query = {
            "client_id": str(client_id),
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": "identify",
            "state": state,
        }
        return f"{self.origin}/oauth2/authorize?{urlencode(query)}"

    async def user_id(self, code: str) -> int:
        """Exchange `code` and read /users/@me; IdentifyFailed on any failure."""
        client_id = self.client_id()
        if client_id is None:
            raise IdentifyFailed("the application id is not known yet")
        api = self.api_base.rstrip("/")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            # Discord takes the client credentials in the form as well as in Basic auth.
            "client_id": str(client_id),
            "client_secret": self.client_secret,
        }
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                async with http.post(f"{api}/oauth2/token", data=form) as response:
                    grant = await response.json(content_type=None)
                    if response.status != 200 or not isinstance(grant, dict):
                        refused = isinstance(grant, dict) and grant.get("error") == "invalid_grant"
                        raise IdentifyFailed(
                            f"token endpoint answered {response.status}", bad_code=refused
                        )
                token = grant.get("access_token")
                if not isinstance(token, str):
                    raise IdentifyFailed("no access token in Discord's answer")
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(f"{api}/users/@me", headers=headers) as response:
                    user = await response.json(content_type=None)
                    if response.status != 200 or not isinstance(user, dict):
                        raise IdentifyFailed(f"/users/@me answered {response.status}")
            return int(user["id"])
        except IdentifyFailed:
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            raise IdentifyFailed(f"{type(exc).__name__}: {exc}") from exc

"""Spotify's accounts service: the authorize URL and the token endpoint (all three grants).

Our own small aiohttp client rather than spotipy's SpotifyOAuth: SpotifyOAuth blocks, keeps
tokens in its cache handler (the stored SpotifyLink is the source of truth here), replaces the
granted scope with the requested one, and logs the Basic header and refresh token at DEBUG.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp

from core.errors import Misconfigured, RateLimited, SpotifyError, TokenRevoked, Upstream
from core.spotify.config import SpotifyConfig
from core.spotify.errors import rate_limited, retry_after
from core.spotify.quota import CallPriority

log = logging.getLogger(__name__)


class Gate(Protocol):
    """The client's quota and limiter, for token calls too (SpotifyClient is one)."""

    async def before_token_call(self, priority: CallPriority) -> None:
        """May a token request at `priority` go out now? Raises (nothing sent) if not."""
        ...

    async def token_call_limited(self, error: RateLimited) -> RateLimited:
        """The token endpoint answered 429: record the hold; the error to raise."""
        ...


# Shown when the refresh token is dead: the token endpoint said so, or the link is marked.
RELINK = "Your Spotify link has expired: run /link again."
# Shown when Spotify refuses the app itself: retrying cannot help, only the operator can.
MISCONFIGURED = (
    "This bot is misconfigured: Spotify refused its app credentials. "
    "Please tell the bot's operator; trying again won't help."
)


@dataclass(frozen=True)
class TokenGrant:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)  # None: keep the one you have (no rotation)
    expires_at: float
    scopes: tuple[str, ...]


class Accounts:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        config: SpotifyConfig,
        clock: Callable[[], float] = time.time,
        gate: Gate | None = None,
    ) -> None:
        self._gate = gate
        self._http = http
        self._config = config
        self._clock = clock
        self._token_url = config.accounts_base.rstrip("/") + "/api/token"
        # Spotify wants the client credentials as HTTP Basic auth on the token endpoint.
        self._headers = {
            "Authorization": aiohttp.encode_basic_auth(config.client_id, config.client_secret)
        }

    def authorize_url(self, state: str) -> str:
        params = {
            "client_id": self._config.client_id,
            "response_type": "code",
            "redirect_uri": self._config.redirect_uri,
            "scope": " ".join(self._config.scopes),
            "state": state,
            # Without it Spotify approves a returning user silently: whoever opens a forwarded
            # /link URL would link their account without seeing what they agree to.
            "show_dialog": "true",
        }
        return f"{self._config.accounts_base.rstrip('/')}/authorize?{urlencode(params)}"

    async def exchange_code(self, code: str) -> TokenGrant:
        # A person is waiting on the callback page: a command's priority.
        grant = await self._grant(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self._config.redirect_uri,
            },
            CallPriority.COMMAND,
        )
        if grant.refresh_token is None:
            raise Upstream("Spotify sent no refresh token.")
        return grant

    async def refresh(
        self, refresh_token: str, priority: CallPriority = CallPriority.COMMAND
    ) -> TokenGrant:
        """A new access token; TokenRevoked when the refresh token is dead (invalid_grant).
        `priority`: that of the call that needs the token (it spends the budget as one)."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return await self._grant(form, priority)

    async def client_token(self, priority: CallPriority = CallPriority.COMMAND) -> TokenGrant:
        return await self._grant({"grant_type": "client_credentials"}, priority)

    async def _grant(self, form: dict[str, str], priority: CallPriority) -> TokenGrant:
        if self._gate is not None:
            await self._gate.before_token_call(priority)
        sent_at = self._clock()
        body = await self._post(form)
        try:
            access = str(body["access_token"])
            lifetime = float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            raise Upstream("Spotify sent a token answer we cannot read.") from None
        refresh = body.get("refresh_token")
        return TokenGrant(
            access_token=access,
            refresh_token=str(refresh) if refresh else None,
            # Count from when we asked, so clock skew and latency make us refresh early, not late.
            expires_at=sent_at + lifetime,
            scopes=tuple(str(body.get("scope") or "").split()),
        )

    async def _post(self, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form["grant_type"]
        timeout = aiohttp.ClientTimeout(total=self._config.call_timeout)
        try:
            async with self._http.post(
                self._token_url, data=form, headers=self._headers, timeout=timeout
            ) as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                headers = dict(response.headers)
        except TimeoutError:
            raise Upstream("Spotify did not answer in time.", timeout=True) from None
        except aiohttp.ClientError as exc:
            log.warning("Spotify token endpoint unreachable: %s", type(exc).__name__)
            raise Upstream("Spotify cannot be reached right now.") from None
        if status == 200 and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if status == 400 and error == "invalid_grant":
            raise TokenRevoked(RELINK)
        if status == 429:
            # The quota answer here has the Web API's shape: {"error": {"reason": ...}}.
            quota = isinstance(error, dict) and error.get("reason") == "QUOTA_EXCEEDED"
            limited = rate_limited(retry_after(headers), quota, self._clock())
            if self._gate is not None:
                limited = await self._gate.token_call_limited(limited)
            raise limited
        if status >= 500 or not isinstance(body, dict):
            raise Upstream("Spotify is having trouble right now; try again shortly.", status=status)
        # invalid_client and friends are our configuration, not the user's doing.
        log.error("Spotify token endpoint refused %s: %s %s", grant_type, status, error)
        if error == "invalid_client":
            raise Misconfigured(MISCONFIGURED)
        raise SpotifyError("Spotify refused this bot's credentials; tell the operator.")

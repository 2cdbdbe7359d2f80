"""Linking a Discord user to a Spotify account (OAuth authorization code flow).

`begin` stores a single-use state bound to the user and returns Spotify's authorize URL;
`complete` runs on the callback: it consumes the state (exactly once, even under concurrent
callbacks), exchanges the code, reads /v1/me and stores the link with its tokens (storage
encrypts them). Every outcome carries a message that is safe to show on the callback page.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from core.errors import Misconfigured, SpotifyError
from core.spotify.client import SpotifyClient
from storage.base import LinkStore, OAuthStateStore
from storage.records import OAuthState, SpotifyLink, StateCheck

log = logging.getLogger(__name__)

STATE_TTL = 600.0  # seconds a /link URL stays usable
STATE_BYTES = 32  # 256 bits of randomness; Spotify echoes the state back verbatim

Reason = Literal[
    "linked", "denied", "expired", "used", "unknown", "exchange_failed", "misconfigured"
]

# What happened, for the callback page; the page adds what to do next (bot/web/linking.py).
_MESSAGES: dict[Reason, str] = {
    "denied": "You cancelled on Spotify, so nothing was linked.",
    "expired": "Links from /link last 10 minutes, and this one ran out.",
    "used": "Each link from /link works once, and this one was already used.",
    "unknown": "This address is not one the bot handed out, or it was cut short.",
    "exchange_failed": "Spotify did not complete the link.",
    "misconfigured": "Spotify refused this bot's own app credentials, so no account can be "
    "linked until they are fixed.",
}


@dataclass(frozen=True)
class LinkOutcome:
    ok: bool
    message: str  # safe for the callback page
    discord_user_id: int | None
    display_name: str | None
    reason: Reason


class Linker:
    def __init__(
        self,
        states: OAuthStateStore,
        links: LinkStore,
        spotify: SpotifyClient,
        *,
        clock: Callable[[], float] = time.time,
        state_ttl: float = STATE_TTL,
    ) -> None:
        self._states = states
        self._links = links
        self._spotify = spotify
        self._clock = clock
        self._ttl = state_ttl

    async def begin(self, discord_user_id: int, guild_id: int | None) -> str:
        """Store a fresh single-use state for the user; return the authorize URL."""
        now = self._clock()
        state = secrets.token_urlsafe(STATE_BYTES)
        await self._states.put_oauth_state(
            OAuthState(state, discord_user_id, guild_id, created_at=now, expires_at=now + self._ttl)
        )
        return self._spotify.accounts.authorize_url(state)

    async def complete(self, state: str | None, code: str | None, error: str | None) -> LinkOutcome:
        """Finish the flow from the callback's query parameters."""
        if not state:
            return self._fail("unknown", None)
        consumed = await self._states.consume_oauth_state(state, self._clock())
        user_id = consumed.record.discord_user_id if consumed.record else None
        if consumed.check == StateCheck.EXPIRED:
            return self._fail("expired", user_id)
        if consumed.check == StateCheck.USED:
            return self._fail("used", None)
        if consumed.check != StateCheck.OK or user_id is None:
            return self._fail("unknown", None)
        if error:
            log.info("user %s declined Spotify authorization (%s)", user_id, error[:40])
            return self._fail("denied", user_id)
        if not code:
            return self._fail("exchange_failed", user_id)
        try:
            grant = await self._spotify.accounts.exchange_code(code)
            profile = await self._spotify.profile_with_token(grant.access_token)
        except Misconfigured:
            return self._fail("misconfigured", user_id)  # logged as an ERROR where it was seen
        except SpotifyError as exc:
            log.warning("linking user %s failed: %s", user_id, type(exc).__name__)
            return self._fail("exchange_failed", user_id)
        assert grant.refresh_token is not None  # exchange_code guarantees it
        await self._links.put_link(
            SpotifyLink(
                discord_user_id=user_id,
                spotify_user_id=profile.id,
                display_name=profile.display_name,
                access_token=grant.access_token,
                refresh_token=grant.refresh_token,
                expires_at=grant.expires_at,
                scopes=grant.scopes,
                linked_at=self._clock(),
            )
        )
        log.info("user %s linked Spotify account %s", user_id, profile.id)
        return LinkOutcome(
            ok=True,
            message=f"Linked Spotify account “{profile.display_name}”.",
            discord_user_id=user_id,
            display_name=profile.display_name,
            reason="linked",
        )

    async def unlink(self, discord_user_id: int) -> bool:
        return await self._links.delete_link(discord_user_id)

    async def link(self, discord_user_id: int) -> SpotifyLink | None:
        return await self._links.get_link(discord_user_id)

    @staticmethod
    def _fail(reason: Reason, user_id: int | None) -> LinkOutcome:
        return LinkOutcome(False, _MESSAGES[reason], user_id, None, reason)

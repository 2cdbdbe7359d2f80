"""Linking a Discord user to a Spotify account (OAuth authorization code flow).

`begin` stores a single-use state bound to the user and returns Spotify's authorize URL;
`complete` runs on the callback: it consumes the state (exactly once, even under concurrent
callbacks), exchanges the code and reads /v1/me — and stores nothing yet. The /link URL may
have been forwarded to someone else, so the person in the browser first sees which Discord
account will get which Spotify account, and `confirm` (a POST carrying the state and the
pending link's form token, usable once) stores the link; `cancel` drops it. With Discord's own
OAuth configured, `vouch` + `confirm_as` make Discord say who is confirming, and a link
completed by anyone but the user who ran /link is refused. Every outcome carries a message
that is safe to show on the page.

Pending links live in this process's memory for `STATE_TTL` (they hold fresh tokens, and the
callback and the confirmation reach the same web process).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from core.errors import (
    Misconfigured,
    NotAllowlisted,
    OwnerPremiumLapsed,
    QuotaHeld,
    SpotifyError,
)
from core.spotify.client import SpotifyClient
from storage.base import LinkStore, OAuthStateStore
from storage.records import OAuthState, SpotifyLink, StateCheck

log = logging.getLogger(__name__)

STATE_TTL = 600.0  # seconds a /link URL stays usable
STATE_BYTES = 32  # 256 bits of randomness; Spotify echoes the state back verbatim

Reason = Literal[
    "linked",
    "confirm",
    "cancelled",
    "mismatch",
    "denied",
    "expired",
    "used",
    "unknown",
    "exchange_failed",
    "misconfigured",
]
MAX_PENDING = 1000  # confirmations waiting at once; beyond it the oldest is dropped

# What happened, for the callback page; the page adds what to do next (bot/web/linking.py).
_MESSAGES: dict[Reason, str] = {
    "denied": "You cancelled on Spotify, so nothing was linked.",
    "expired": "Links from /link last 10 minutes, and this one ran out.",
    "used": "Each link from /link works once, and this one was already used.",
    "unknown": "This address is not one the bot handed out, or it was cut short.",
    "exchange_failed": "Spotify answered with an error while confirming your account, so "
    "nothing was linked.",
    "misconfigured": "Spotify refused this bot's own app credentials, so no account can be "
    "linked until they are fixed.",
    "cancelled": "You cancelled on the confirmation page, so nothing was linked.",
    "mismatch": (
        "This link was started by a different Discord account than yours, so nothing was "
        "linked. Only the person who ran /link can complete it."
    ),
}


@dataclass(frozen=True)
class PendingLink:
    """A finished Spotify authorization waiting for the person to confirm it."""

    state: str
    form_token: str  # goes in the confirmation form: the POST must carry it (CSRF)
    discord_user_id: int
    spotify_user_id: str
    spotify_name: str
    expires_at: float
    link: SpotifyLink = field(repr=False)  # carries the tokens


@dataclass(frozen=True)
class LinkOutcome:
    ok: bool
    message: str  # safe for the callback page
    discord_user_id: int | None
    display_name: str | None
    reason: Reason
    pending: PendingLink | None = None  # set when reason is "confirm"


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
        self._pending: dict[str, PendingLink] = {}  # by OAuth state, oldest first
        self._vouching: dict[str, str] = {}  # Discord OAuth state -> OAuth state

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
            # %r: the text is the client's, and must not forge log lines (CR/LF, escapes).
            log.info("user %s declined Spotify authorization (%r)", user_id, error[:40])
            return self._fail("denied", user_id)
        if not code:
            return self._fail("exchange_failed", user_id)
        try:
            grant = await self._spotify.accounts.exchange_code(code)
            profile = await self._spotify.profile_with_token(grant.access_token)
        except Misconfigured:
            return self._fail("misconfigured", user_id)  # logged as an ERROR where it was seen
        except (NotAllowlisted, OwnerPremiumLapsed, QuotaHeld) as exc:
            # Development-mode refusals the user (or the bot owner) can act on: say which.
            log.info("linking user %s refused by Spotify: %s", user_id, type(exc).__name__)
            return LinkOutcome(False, exc.message, user_id, None, "exchange_failed")
        except SpotifyError as exc:
            log.warning("linking user %s failed: %s", user_id, type(exc).__name__)
            return self._fail("exchange_failed", user_id)
        assert grant.refresh_token is not None  # exchange_code guarantees it
        now = self._clock()
        link = SpotifyLink(
            discord_user_id=user_id,
            spotify_user_id=profile.id,
            display_name=profile.display_name,
            access_token=grant.access_token,
            refresh_token=grant.refresh_token,
            expires_at=grant.expires_at,
            scopes=grant.scopes,
            linked_at=now,
        )
        pending = PendingLink(
            state=state,
            form_token=secrets.token_urlsafe(STATE_BYTES),
            discord_user_id=user_id,
            spotify_user_id=profile.id,
            spotify_name=profile.display_name,
            expires_at=now + self._ttl,
            link=link,
        )
        self._keep(pending)
        return LinkOutcome(
            ok=True,
            message="Check the accounts below, then confirm.",
            discord_user_id=user_id,
            display_name=profile.display_name,
            reason="confirm",
            pending=pending,
        )

    def pending(self, state: str, form_token: str) -> PendingLink | None:
        """The unexpired pending link of `state`, if `form_token` is its token."""
        pending = self._pending.get(state)
        if pending is None or pending.expires_at < self._clock():
            return None
        given = form_token.encode("utf-8", "replace")
        if not hmac.compare_digest(pending.form_token.encode(), given):
            return None
        return pending

    async def confirm(self, state: str, form_token: str) -> LinkOutcome:
        """Store the pending link (once): the person confirmed on our page."""
        pending = self._take(state, form_token)
        if pending is None:
            return self._fail("used", None)
        try:
            return await self._store(pending)
        except BaseException:
            self._pending.setdefault(state, pending)  # storage failed: the person may retry
            raise

    def cancel(self, state: str, form_token: str) -> LinkOutcome:
        pending = self._take(state, form_token)
        if pending is None:
            return self._fail("used", None)
        log.info("user %s cancelled linking on the confirmation page", pending.discord_user_id)
        return self._fail("cancelled", pending.discord_user_id)

    def vouch(self, state: str, form_token: str) -> str | None:
        """A fresh state for Discord's OAuth, bound to this pending link; None if it is gone."""
        if self.pending(state, form_token) is None:
            return None
        discord_state = secrets.token_urlsafe(STATE_BYTES)
        self._vouching[discord_state] = state
        return discord_state

    def vouched_link(self, discord_state: str) -> PendingLink | None:
        state = self._vouching.get(discord_state)
        return None if state is None else self._pending.get(state)

    async def confirm_as(self, discord_state: str, discord_user_id: int | None) -> LinkOutcome:
        """Discord says `discord_user_id` is confirming: store the link only if it is theirs.

        `discord_user_id` None means Discord did not say (declined or failed): nothing is
        stored. The pending link is used up either way.
        """
        state = self._vouching.pop(discord_state, None)
        pending = self._pending.get(state) if state is not None else None
        if pending is None or pending.expires_at < self._clock():
            return self._fail("used", None)
        del self._pending[pending.state]  # a mismatch or a refusal burns it: no second guess
        if discord_user_id is None:
            return self._fail("cancelled", pending.discord_user_id)
        if discord_user_id != pending.discord_user_id:
            log.warning(
                "user %s tried to complete the Spotify link of user %s: refused",
                discord_user_id,
                pending.discord_user_id,
            )
            return self._fail("mismatch", pending.discord_user_id)
        try:
            return await self._store(pending)
        except BaseException:
            # Storage failed: the person may press Link again (it asks Discord again).
            self._pending.setdefault(pending.state, pending)
            raise

    def _keep(self, pending: PendingLink) -> None:
        now = self._clock()
        for state in [s for s, p in self._pending.items() if p.expires_at < now]:
            del self._pending[state]
        while len(self._pending) >= MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        live = set(self._pending)
        self._vouching = {d: s for d, s in self._vouching.items() if s in live}
        self._pending[pending.state] = pending

    def _take(self, state: str, form_token: str) -> PendingLink | None:
        pending = self.pending(state, form_token)
        if pending is not None:
            del self._pending[state]
        return pending

    async def _store(self, pending: PendingLink) -> LinkOutcome:
        link = pending.link
        await self._links.put_link(link)
        log.info("user %s linked Spotify account %s", link.discord_user_id, link.spotify_user_id)
        return LinkOutcome(
            ok=True,
            message=f"Linked Spotify account “{link.display_name}”.",
            discord_user_id=link.discord_user_id,
            display_name=link.display_name,
            reason="linked",
        )

    async def unlink(self, discord_user_id: int) -> bool:
        return await self._links.delete_link(discord_user_id)

    async def link(self, discord_user_id: int) -> SpotifyLink | None:
        return await self._links.get_link(discord_user_id)

    @staticmethod
    def _fail(reason: Reason, user_id: int | None) -> LinkOutcome:
        return LinkOutcome(False, _MESSAGES[reason], user_id, None, reason)

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

Pending links are kept in storage for `STATE_TTL` (encrypted: they hold fresh tokens) under
the hash of their state, so the callback and the confirmation may reach different web
replicas. Each button press uses a pending link up atomically: the first press wins, and a
Cancel that comes after Link (or the reverse) is told what the first press did.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from core.errors import (
    Misconfigured,
    NotAllowlisted,
    OwnerPremiumLapsed,
    QuotaHeld,
    SpotifyError,
)
from core.spotify.client import SpotifyClient
from storage.base import LinkStore, OAuthStateStore, PendingLinkStore
from storage.records import OAuthState, PendingLink, PendingTaker, SpotifyLink, StateCheck

__all__ = ["STATE_TTL", "LinkOutcome", "Linker", "PendingLink", "Reason"]

log = logging.getLogger(__name__)

STATE_TTL = 600.0  # seconds a /link URL stays usable
STATE_BYTES = 32  # 256 bits of randomness; Spotify echoes the state back verbatim

Reason = Literal[
    "linked",
    "confirm",
    "cancelled",
    "already_linked",
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
    "already_linked": (
        "Link was pressed first, so these accounts are linked. To undo it, run /unlink in Discord."
    ),
    "mismatch": (
        "This link was started by a different Discord account than yours, so nothing was "
        "linked. Only the person who ran /link can complete it."
    ),
}


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
        pending: PendingLinkStore | None = None,
        clock: Callable[[], float] = time.time,
        state_ttl: float = STATE_TTL,
    ) -> None:
        self._states = states
        self._links = links
        # One storage usually keeps all three; a separate pending store is for tests.
        self._pending = pending if pending is not None else _pending_store(states)
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
            return self.failed("unknown", None)
        consumed = await self._states.consume_oauth_state(state, self._clock())
        user_id = consumed.record.discord_user_id if consumed.record else None
        if consumed.check == StateCheck.EXPIRED:
            return self.failed("expired", user_id)
        if consumed.check == StateCheck.USED:
            return self.failed("used", None)
        if consumed.check != StateCheck.OK or user_id is None:
            return self.failed("unknown", None)
        if error:
            # %r: the text is the client's, and must not forge log lines (CR/LF, escapes).
            log.info("user %s declined Spotify authorization (%r)", user_id, error[:40])
            return self.failed("denied", user_id)
        if not code:
            return self.failed("exchange_failed", user_id)
        try:
            grant = await self._spotify.accounts.exchange_code(code)
            profile = await self._spotify.profile_with_token(grant.access_token)
        except Misconfigured:
            return self.failed("misconfigured", user_id)  # logged as an ERROR where it was seen
        except (NotAllowlisted, OwnerPremiumLapsed, QuotaHeld) as exc:
            # Development-mode refusals the user (or the bot owner) can act on: say which.
            log.info("linking user %s refused by Spotify: %s", user_id, type(exc).__name__)
            return LinkOutcome(False, exc.message, user_id, None, "exchange_failed")
        except SpotifyError as exc:
            log.warning("linking user %s failed: %s", user_id, type(exc).__name__)
            return self.failed("exchange_failed", user_id)
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
            expires_at=now + self._ttl,
            link=link,
        )
        await self._pending.put_pending_link(pending, now, MAX_PENDING)
        return LinkOutcome(
            ok=True,
            message="Check the accounts below, then confirm.",
            discord_user_id=user_id,
            display_name=profile.display_name,
            reason="confirm",
            pending=pending,
        )

    async def pending(self, state: str, form_token: str) -> PendingLink | None:
        """The unexpired, untaken pending link of `state`, if `form_token` is its token."""
        return _checked(
            (await self._pending.get_pending_link(state, self._clock())).pending, form_token
        )

    async def _press(self, state: str, form_token: str, by: PendingTaker) -> LinkOutcome | None:
        """None if the form may use the pending link; else the outcome to show instead."""
        found = await self._pending.get_pending_link(state, self._clock())
        if found.pending is None:
            return self._lost_race(found.taken_by, by)
        if _checked(found.pending, form_token) is None:
            return self.failed("used")
        return None

    async def confirm(self, state: str, form_token: str) -> LinkOutcome:
        """Store the pending link (once): the person confirmed on our page."""
        refused = await self._press(state, form_token, PendingTaker.LINK)
        if refused is not None:
            return refused
        take = await self._pending.take_pending_link(state, self._clock(), PendingTaker.LINK)
        if take.pending is None:
            return self._lost_race(take.taken_by, PendingTaker.LINK)
        return await self._store_or_restore(take.pending)

    async def cancel(self, state: str, form_token: str) -> LinkOutcome:
        refused = await self._press(state, form_token, PendingTaker.CANCEL)
        if refused is not None:
            return refused
        take = await self._pending.take_pending_link(state, self._clock(), PendingTaker.CANCEL)
        if take.pending is None:
            return self._lost_race(take.taken_by, PendingTaker.CANCEL)
        log.info("user %s cancelled linking on the confirmation page", take.pending.discord_user_id)
        return self.failed("cancelled", take.pending.discord_user_id)

    async def vouch(self, state: str, form_token: str) -> str | None:
        """A fresh state for Discord's OAuth, bound to this pending link; None if it is gone.

        Each press replaces the previous Discord state: only the latest one completes.
        """
        pending = await self.pending(state, form_token)
        if pending is None:
            return None
        secret = secrets.token_urlsafe(STATE_BYTES)
        if not await self._pending.update_pending_link(
            replace(pending, vouch=secret), self._clock()
        ):
            return None
        return f"{state}.{secret}"

    async def vouched_link(self, discord_state: str) -> PendingLink | None:
        """The pending link `discord_state` (from `vouch`) is bound to, while it waits."""
        state, _, secret = discord_state.partition(".")
        if not state or not secret:
            return None
        pending = (await self._pending.get_pending_link(state, self._clock())).pending
        if pending is None or pending.vouch is None:
            return None
        if not hmac.compare_digest(pending.vouch.encode(), secret.encode("utf-8", "replace")):
            return None
        return pending

    async def confirm_as(self, discord_state: str, discord_user_id: int | None) -> LinkOutcome:
        """Discord says `discord_user_id` is confirming: store the link only if it is theirs.

        `discord_user_id` None means Discord did not say (declined or failed): nothing is
        stored. The pending link is used up either way.
        """
        if await self.vouched_link(discord_state) is None:
            return self.failed("used")
        state = discord_state.partition(".")[0]
        taker = PendingTaker.CANCEL if discord_user_id is None else PendingTaker.LINK
        take = await self._pending.take_pending_link(state, self._clock(), taker)
        pending = take.pending
        if pending is None:
            return self._lost_race(take.taken_by, taker)
        # A mismatch or a refusal burns it: no second guess.
        if discord_user_id is None:
            return self.failed("cancelled", pending.discord_user_id)
        if discord_user_id != pending.discord_user_id:
            log.warning(
                "user %s tried to complete the Spotify link of user %s: refused",
                discord_user_id,
                pending.discord_user_id,
            )
            return self.failed("mismatch", pending.discord_user_id)
        # If storage fails, the person may press Link again (it asks Discord again).
        return await self._store_or_restore(replace(pending, vouch=None))

    def _lost_race(self, taken_by: PendingTaker | None, now: PendingTaker) -> LinkOutcome:
        """A button was pressed first: a Cancel after Link (or the reverse) says what it did."""
        if taken_by is PendingTaker.LINK and now is PendingTaker.CANCEL:
            return self.failed("already_linked")
        if taken_by is PendingTaker.CANCEL:
            return self.failed("cancelled")
        return self.failed("used")

    async def _store_or_restore(self, pending: PendingLink) -> LinkOutcome:
        try:
            return await self._store(pending)
        except BaseException:
            # Storage failed (or the request was cancelled): the person may press Link again.
            # Best effort: with storage down, putting it back fails too.
            now = self._clock()
            try:
                await self._pending.put_pending_link(pending, now, MAX_PENDING)
            except Exception as exc:  # the first error is the one to raise
                log.info(
                    "could not put back the pending link of user %s: %r",
                    pending.discord_user_id,
                    exc,
                )
            raise

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
    def failed(reason: Reason, user_id: int | None = None) -> LinkOutcome:
        """The outcome (and its page message) of a link that stored nothing."""
        return LinkOutcome(False, _MESSAGES[reason], user_id, None, reason)


def _checked(pending: PendingLink | None, form_token: str) -> PendingLink | None:
    """`pending` if `form_token` is its token (compared in constant time)."""
    if pending is None:
        return None
    given = form_token.encode("utf-8", "replace")
    return pending if hmac.compare_digest(pending.form_token.encode(), given) else None


def _pending_store(states: OAuthStateStore) -> PendingLinkStore:
    if not hasattr(states, "take_pending_link"):
        raise TypeError("the state store does not keep pending links: pass `pending=`")
    return states  # type: ignore[return-value]

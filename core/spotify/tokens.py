"""Access tokens: the user's (from the stored link) and the app's (client credentials).

The stored SpotifyLink is the source of truth. A refresh happens under a per-user lock and
re-reads the link first, so when many calls find the same token expired (or get 401 with it)
exactly one refresh goes out and the others use its result. A rotated refresh token is stored;
invalid_grant marks the link NEEDS_RELINK, unless the stored link meanwhile carries a different
refresh token (another process won a race and rotated it): then the stored link is used.

The refresh (lock, token POST, storing the answer) runs as one task its callers only wait for
(`asyncio.shield`): Spotify may rotate the refresh token, and a caller cancelled between
Spotify's answer and our store (a sync round's timeout) would otherwise drop the only valid
refresh token and leave the link needing a relink.

The lock spans processes through the store (`StoreLocks`: `LockStore.named_lock`, redis-py's
Lock on Redis, a lock row on SQLite, whose file the indexer shares with the bot); `LocalLocks`
is per process, for a client without storage.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Protocol

from core.errors import NotLinked, TokenRevoked
from core.spotify.accounts import RELINK, Accounts, TokenGrant
from core.spotify.quota import CallPriority
from storage.base import LinkStore, LockStore
from storage.records import LinkStatus, SpotifyLink

log = logging.getLogger(__name__)

NOT_LINKED = "You haven't linked Spotify yet: run /link."
# A refresh takes at most a token call (seconds); a holder that died frees the lock by then.
LOCK_TTL = 20.0
LOCK_WAIT = 20.0
CLOSE_WAIT = 10.0  # at shutdown, for refreshes still storing their answer


class RefreshLocks(Protocol):
    def __call__(self, user_id: int) -> AbstractAsyncContextManager[None]: ...


class LocalLocks:
    """One asyncio.Lock per user, in this process."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def __call__(self, user_id: int) -> AsyncIterator[None]:
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = asyncio.Lock()
        async with lock:
            yield


class StoreLocks:
    """The store's lock (across processes), behind a local one so a process's own callers
    queue in memory and only one of them waits on the store."""

    def __init__(self, store: LockStore) -> None:
        self._store = store
        self._local = LocalLocks()

    @asynccontextmanager
    async def __call__(self, user_id: int) -> AsyncIterator[None]:
        async with (
            self._local(user_id),
            self._store.named_lock(f"spotify-refresh:{user_id}", LOCK_TTL, LOCK_WAIT),
        ):
            yield


def _fresh(expires_at: float, margin: float, clock: Callable[[], float]) -> bool:
    """Whether a token expiring at `expires_at` still has more than `margin` seconds to live."""
    return expires_at - margin > clock()


class UserTokens:
    def __init__(
        self,
        links: LinkStore,
        accounts: Accounts,
        *,
        margin: float = 60.0,
        clock: Callable[[], float] = time.time,
        locks: RefreshLocks | None = None,
    ) -> None:
        self._links = links
        self._accounts = accounts
        self._margin = margin
        self._clock = clock
        self._locks: RefreshLocks = locks if locks is not None else LocalLocks()
        self._running: set[asyncio.Task[SpotifyLink]] = set()

    async def _load(self, user_id: int) -> SpotifyLink:
        link = await self._links.get_link(user_id)
        if link is None:
            raise NotLinked(NOT_LINKED)
        if link.status == LinkStatus.NEEDS_RELINK:
            raise TokenRevoked(RELINK)
        return link

    async def current(
        self, user_id: int, priority: CallPriority = CallPriority.COMMAND
    ) -> SpotifyLink:
        """The user's link with an access token that is not about to expire."""
        link = await self._load(user_id)
        fresh = _fresh(link.expires_at, self._margin, self._clock)
        return link if fresh else await self.refresh(user_id, link.access_token, priority)

    async def refresh(
        self, user_id: int, stale_token: str, priority: CallPriority = CallPriority.COMMAND
    ) -> SpotifyLink:
        """Replace `stale_token` (expired or refused); a no-op if someone already did.

        The caller only waits: cancelling it leaves the refresh running to its store."""
        task = asyncio.create_task(self._refresh(user_id, stale_token, priority))
        self._running.add(task)  # a strong reference while nobody may be awaiting it
        task.add_done_callback(_forget(self._running))
        return await asyncio.shield(task)

    async def _refresh(self, user_id: int, stale_token: str, priority: CallPriority) -> SpotifyLink:
        async with self._locks(user_id):
            link = await self._load(user_id)
            fresh = _fresh(link.expires_at, self._margin, self._clock)
            if link.access_token != stale_token and fresh:
                return link
            try:
                grant = await self._accounts.refresh(link.refresh_token, priority)
            except TokenRevoked:
                stored = await self._links.get_link(user_id)
                if stored is not None and stored.refresh_token != link.refresh_token:
                    # Someone else (another process, without a shared lock) refreshed and
                    # rotated the token meanwhile: the link is fine, use what is stored.
                    return await self._load(user_id)
                log.info("Spotify refresh token of user %s is revoked: needs relink", user_id)
                await self._links.set_link_status(user_id, LinkStatus.NEEDS_RELINK, link.linked_at)
                raise
            updated = replace(
                link,
                access_token=grant.access_token,
                refresh_token=grant.refresh_token or link.refresh_token,
                expires_at=grant.expires_at,
                scopes=grant.scopes or link.scopes,
            )
            if not await self._links.update_link_tokens(updated):
                # Unlinked or linked again while the refresh was out: keep what is stored now.
                return await self._load(user_id)
            return updated

    async def aclose(self) -> None:
        """Let refreshes whose callers left finish storing what Spotify answered (a rotated
        refresh token is the only valid one), for at most CLOSE_WAIT seconds."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=CLOSE_WAIT)

    async def set_status(self, link: SpotifyLink, status: LinkStatus) -> None:
        if link.status != status:
            await self._links.set_link_status(link.discord_user_id, status, link.linked_at)


def _forget(
    running: set[asyncio.Task[SpotifyLink]],
) -> Callable[[asyncio.Task[SpotifyLink]], None]:
    def done(task: asyncio.Task[SpotifyLink]) -> None:
        running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a refresh whose caller left is not an asyncio error

    return done


class AppToken:
    """The client-credentials token, kept in memory and renewed under one lock."""

    def __init__(
        self, accounts: Accounts, *, margin: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._accounts = accounts
        self._margin = margin
        self._clock = clock
        self._grant: TokenGrant | None = None
        self._lock = asyncio.Lock()

    async def current(self, priority: CallPriority = CallPriority.COMMAND) -> str:
        grant = self._grant
        if grant is not None and _fresh(grant.expires_at, self._margin, self._clock):
            return grant.access_token
        return await self.refresh(grant.access_token if grant else None, priority)

    async def refresh(
        self, stale_token: str | None, priority: CallPriority = CallPriority.COMMAND
    ) -> str:
        async with self._lock:
            grant = self._grant
            if (
                grant is not None
                and grant.access_token != stale_token
                and _fresh(grant.expires_at, self._margin, self._clock)
            ):
                return grant.access_token
            self._grant = await self._accounts.client_token(priority)
            return self._grant.access_token

"""The storage contract: one set of Protocols, implemented by the SQLite and Redis backends.

Every backend passes the same contract suite (tests/storage/test_contract.py). Callers depend
on the narrow Protocol they need (a `LinkStore`, a `StreamCache`, ...), never on a backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypedDict

from storage.records import (
    CachedStream,
    CounterHit,
    Failure,
    Hold,
    HostSnapshot,
    LinkStatus,
    ListenerState,
    OAuthState,
    PendingLink,
    PendingTake,
    PendingTaker,
    Session,
    SpotifyLink,
    StateConsumption,
)


class SessionFields(TypedDict, total=False):
    """Session-level fields `update_session` may change; listeners have their own calls."""

    host_user_id: int
    channel_id: int | None
    status_message_id: int | None
    snapshot: HostSnapshot | None
    listen_token: str | None
    host_active_at: float


class LinkStore(Protocol):
    async def put_link(self, link: SpotifyLink) -> None: ...
    async def get_link(self, discord_user_id: int) -> SpotifyLink | None: ...
    async def set_link_status(
        self, discord_user_id: int, status: LinkStatus, linked_at: float | None = None
    ) -> bool:
        """Change the status; with `linked_at`, only if the stored link is that same linking."""
        ...

    async def update_link_tokens(self, link: SpotifyLink) -> bool:
        """Store `link`'s tokens, expiry and scopes, only if the stored link is the same
        linking (same `linked_at`): a refresh that finishes after an unlink or a re-link must
        not bring the old link back. Other fields (status) are left as stored."""
        ...

    async def delete_link(self, discord_user_id: int) -> bool: ...


class OAuthStateStore(Protocol):
    async def put_oauth_state(self, state: OAuthState) -> None: ...

    async def consume_oauth_state(self, state: str, now: float) -> StateConsumption:
        """Atomically use a state once: exactly one of any concurrent callers gets OK."""
        ...


class PendingLinkStore(Protocol):
    """Finished authorizations waiting for their confirmation, shared by every web process."""

    async def put_pending_link(self, pending: PendingLink, now: float, max_pending: int) -> None:
        """Store (or restore) `pending`; drop expired ones and the oldest beyond `max_pending`."""
        ...

    async def get_pending_link(self, state: str, now: float) -> PendingTake:
        """The unexpired pending link of `state` if nobody took it yet, else who took it."""
        ...

    async def update_pending_link(self, pending: PendingLink, now: float) -> bool:
        """Replace it only while it still waits (untaken, unexpired); never resurrects one."""
        ...

    async def take_pending_link(self, state: str, now: float, by: PendingTaker) -> PendingTake:
        """Atomically use it up: exactly one of any concurrent callers gets the pending link;
        the others learn who took it. Its tokens are erased from storage."""
        ...


class SessionStore(Protocol):
    async def create_session(self, session: Session) -> bool:
        """Store a new session; False (and nothing written) if the guild already has one."""
        ...

    async def get_session(self, guild_id: int) -> Session | None: ...

    async def get_session_by_listen_token(self, token: str) -> Session | None:
        """The session whose listen token is `token`, found by index (never a scan)."""
        ...

    async def list_sessions(self) -> list[Session]: ...
    async def update_session(self, guild_id: int, fields: SessionFields) -> bool: ...
    async def delete_session(self, guild_id: int) -> bool: ...
    async def put_listener(self, guild_id: int, listener: ListenerState) -> bool:
        """Add or replace a listener (a join); False when the session does not exist."""
        ...

    async def update_listener(self, guild_id: int, listener: ListenerState) -> bool:
        """Replace a listener's state only while they are still listening: a status written
        after they left (by a sync loop, maybe in another process) must not add them back."""
        ...

    async def remove_listener(self, guild_id: int, user_id: int) -> bool: ...


class StreamCache(Protocol):
    async def get_stream(self, track_id: str) -> CachedStream | None: ...

    async def put_stream(self, entry: CachedStream) -> None:
        """Insert or replace; beyond the configured bound, evict least recently accessed."""
        ...

    async def touch_streams(self, accessed: Mapping[str, float]) -> None:
        """Batch-update last_access (callers defer these so a cache hit costs no write)."""
        ...

    async def delete_stream(self, track_id: str) -> bool: ...
    async def count_streams(self) -> int: ...

    async def streams_to_refresh(
        self, expiring_before: float, accessed_since: float, limit: int
    ) -> list[CachedStream]:
        """Recently used entries whose stream URL expires soon, soonest first."""
        ...

    async def put_failure(self, failure: Failure) -> None: ...

    async def get_failure(self, track_id: str, now: float) -> Failure | None:
        """The negative-cache entry, or None when absent or past its retry_after."""
        ...

    async def delete_failure(self, track_id: str) -> None: ...


class LeaseStore(Protocol):
    """Named leases with an owner token: one holder at a time, lost when not renewed."""

    @property
    def leases_shared(self) -> bool:
        """Whether other processes can hold these leases (Redis), or only this one (SQLite)."""
        ...

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease when free, expired, or already this holder's (a restarted process
        with the same instance identity gets its own leases back at once)."""
        ...

    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool: ...
    async def lease_holder(self, name: str) -> str | None:
        """Who holds it now (None: nobody, or it expired)."""
        ...

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give it up; every `lease_releases` iterator (in any process) then yields its name."""
        ...

    def lease_releases(self) -> AsyncIterator[str]:
        """Names of leases released from now on, so a waiting process takes over at once."""
        ...


class AudienceStore(Protocol):
    """Browsers listening along to each guild's game night, counted by every process that
    serves some: the process posting the status message is usually not the one serving them
    (a web replica). Each process's count lives `ttl` seconds unless written again, so the
    count of a process that died goes away by itself."""

    async def set_audience(self, guild_id: int, process: str, count: int, ttl: float) -> None:
        """This process serves `count` browsers of the guild (0 forgets its count)."""
        ...

    async def get_audience(self, guild_id: int) -> int:
        """The sum over the processes whose counts are still alive."""
        ...


class CounterStore(Protocol):
    """Rolling-window call counters and holds, shared by every process on the same store.

    The Spotify client layer counts every call here (the 30 s rate budget and the account's
    daily quota) and records Retry-After holds, so N processes spend one budget, not N.
    Times are wall-clock epoch seconds supplied by the caller."""

    # True when other processes may use the same store (Redis; a SQLite file the indexer
    # shares with the bot); False for a store in one process's memory.
    shared_across_processes: bool

    async def hit_counter(
        self, name: str, now: float, window: float, limit: int | None = None
    ) -> CounterHit:
        """Forget hits at or before `now - window`; then, if `limit` is None or fewer than
        `limit` hits remain, record one at `now` (atomically: concurrent callers never
        over-admit). Returns whether it was recorded, the count and the oldest hit left."""
        ...

    async def count_counter(self, name: str, now: float, window: float) -> CounterHit:
        """The same answer without recording (recorded is False)."""
        ...

    async def set_hold(self, name: str, until: float, reason: str) -> Hold:
        """Hold `name` until `until` unless a later hold is already stored; the stored one."""
        ...

    async def get_hold(self, name: str, now: float) -> Hold | None:
        """The hold in force at `now`, or None."""
        ...


class LockStore(Protocol):
    def named_lock(self, name: str, ttl: float, wait: float) -> AbstractAsyncContextManager[None]:
        """A mutex over every process sharing this store (redis-py's Lock on Redis; a lock
        row on SQLite, whose file the indexer shares with the bot). Every acquisition is its
        own holder, in this process too. Held at most `ttl` seconds (a crashed holder frees
        it); StorageUnavailable after waiting `wait` seconds."""
        ...


class Storage(
    LinkStore,
    OAuthStateStore,
    PendingLinkStore,
    SessionStore,
    StreamCache,
    LeaseStore,
    CounterStore,
    LockStore,
    AudienceStore,
    Protocol,
):
    """Everything a backend provides, plus its lifetime."""

    url: str

    async def ping(self) -> None:
        """Raise StorageUnavailable when the backend does not answer."""
        ...

    async def aclose(self) -> None: ...

"""Redis backend (redis.asyncio): for several processes sharing one state.

Keys live under a namespace (`gamenight:` by default, `?prefix=` in the URL changes it). What
must be atomic across processes — single-use OAuth states, one session per guild, the bounded
stream cache, leases — runs as a Lua script on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.base import SessionFields
from storage.codec import (
    STATE_RETENTION_S,
    check_session_fields,
    decode_headers,
    dump_listener,
    dump_pending,
    dump_snapshot,
    encode_headers,
    load_listener,
    load_pending,
    load_snapshot,
    state_key,
)
from storage.crypto import TokenCipher
from storage.errors import StorageError, StorageUnavailable
from storage.outage import Outage
from storage.records import (
    CachedStream,
    CounterHit,
    Failure,
    Hold,
    LinkStatus,
    ListenerState,
    OAuthState,
    PendingLink,
    PendingTake,
    PendingTaker,
    Session,
    SpotifyLink,
    StateCheck,
    StateConsumption,
)

P = ParamSpec("P")
R = TypeVar("R")

MAX_CONNECTIONS = 50  # per process; commands beyond it queue for a free connection
CONNECTION_WAIT_S = 10.0  # then StorageUnavailable, rather than waiting forever
CLOSE_S = 2.0  # closing a release subscription: past this, the connection is left to the pool

# KEYS[1] state hash key. ARGV[1] now. Returns {check, user, guild, created, expires}.
_CONSUME_STATE = """
local fields = redis.call('HMGET', KEYS[1], 'user', 'guild', 'created', 'expires', 'used')
if not fields[1] then return {'unknown'} end
if fields[5] then return {'used'} end
redis.call('HSET', KEYS[1], 'used', ARGV[1])
return {'ok', fields[1], fields[2], fields[3], fields[4]}
"""

# KEYS[1] session hash, KEYS[2] listeners hash, KEYS[3] session index set, KEYS[4] the
# listen-token index. ARGV[1] guild id, ARGV[2] listen token ('' for none), ARGV[3] session
# field count n, then n field/value pairs, then listener pairs.
_CREATE_SESSION = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[3])
for i = 4, 3 + 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 4 + 2 * n, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[3], ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[4], ARGV[2], ARGV[1]) end
return 1
"""

# KEYS[1] session hash, KEYS[2] the listen-token index. ARGV[1] guild id, ARGV[2] new listen
# token ('' when unchanged), ARGV[3] field count n, n field/value pairs, then fields to
# delete. Only touches a session that exists; a replaced token leaves the index with it.
_UPDATE_SESSION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] ~= '' then
  local old = redis.call('HGET', KEYS[1], 'listen_token')
  if old then redis.call('HDEL', KEYS[2], old) end
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
end
local n = tonumber(ARGV[3])
for i = 4, 3 + 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 4 + 2 * n, #ARGV do
  if ARGV[i] == 'listen_token' then
    local old = redis.call('HGET', KEYS[1], 'listen_token')
    if old then redis.call('HDEL', KEYS[2], old) end
  end
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return 1
"""

# KEYS[1] session hash, KEYS[2] listeners hash, KEYS[3] session index set, KEYS[4] the
# listen-token index. ARGV[1] guild id. Returns 1 if the session existed.
_DELETE_SESSION = """
local token = redis.call('HGET', KEYS[1], 'listen_token')
if token then redis.call('HDEL', KEYS[4], token) end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return redis.call('DEL', KEYS[1])
"""

# KEYS[1] pending link hash, KEYS[2] pending index zset. ARGV[1] encrypted record,
# ARGV[2] expires_at (ms), ARGV[3] now (ms), ARGV[4] max pending, ARGV[5] key prefix for
# pending links, ARGV[6] state hash. Drops expired ones and the oldest beyond the maximum.
_PUT_PENDING = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'blob', ARGV[1], 'expires', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3])) do
  redis.call('DEL', ARGV[5] .. id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[6])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, excess - 1)) do
    redis.call('DEL', ARGV[5] .. id)
    redis.call('ZREM', KEYS[2], id)
  end
end
return 1
"""

# KEYS[1] pending link hash. ARGV[1] encrypted record, ARGV[2] now (ms). Only a waiting one.
_UPDATE_PENDING = """
local f = redis.call('HMGET', KEYS[1], 'blob', 'expires')
if not f[1] or tonumber(f[2]) < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'blob', ARGV[1])
return 1
"""

# KEYS[1] pending link hash. ARGV[1] taker, ARGV[2] now (ms).
# Returns {'ok', blob}, {'taken', taker} or {'none'}.
_TAKE_PENDING = """
local f = redis.call('HMGET', KEYS[1], 'blob', 'expires', 'taken')
if not f[2] or tonumber(f[2]) < tonumber(ARGV[2]) then return {'none'} end
if f[3] then return {'taken', f[3]} end
redis.call('HDEL', KEYS[1], 'blob')
redis.call('HSET', KEYS[1], 'taken', ARGV[1])
return {'ok', f[1]}
"""

# KEYS[1] a hash. ARGV: field count n, n field/value pairs to set, then fields to delete.
# Only touches a hash that exists, so an update never resurrects a deleted record.
_UPDATE_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[1])
for i = 2, 1 + 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 2 + 2 * n, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
return 1
"""

# KEYS[1] session hash, KEYS[2] listeners hash. ARGV[1] user id, ARGV[2] listener JSON.
_PUT_LISTENER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS[1] listeners hash. ARGV[1] user id, ARGV[2] listener JSON. Only a present listener.
_UPDATE_LISTENER = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS[1] stream hash, KEYS[2] LRU zset, KEYS[3] expiry zset. ARGV[1] track id,
# ARGV[2] last_access, ARGV[3] expires_at, ARGV[4] max entries, ARGV[5] key prefix for streams,
# then field/value pairs.
_PUT_STREAM = """
redis.call('DEL', KEYS[1])
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  local evicted = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  for _, id in ipairs(evicted) do
    redis.call('DEL', ARGV[5] .. id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
  end
end
return 1
"""

# KEYS[1] link hash. ARGV[1] linked_at as stored ('' for any), then field/value pairs.
# Only an existing link of that same linking changes: never resurrects or crosses a re-link.
_UPDATE_LINK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'linked_at') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS[1] LRU zset. ARGV[1] stream key prefix, then track id / access time pairs.
# GT: a late batch never moves an entry back in time; entries evicted meanwhile stay gone.
_TOUCH_STREAMS = """
for i = 2, #ARGV, 2 do
  local id, at = ARGV[i], tonumber(ARGV[i + 1])
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) < at then
    redis.call('ZADD', KEYS[1], at, id)
    redis.call('HSET', ARGV[1] .. id, 'last_access', ARGV[i + 1])
  end
end
return 1
"""

# KEYS[1] lease key. ARGV[1] holder, ARGV[2] ttl ms.
_ACQUIRE_LEASE = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RENEW_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# ARGV[2] the release channel, ARGV[3] the lease name: waiting processes take over at once.
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""

# KEYS[1] audience hash (process -> "count:expires ms"). ARGV[1] process, ARGV[2] count, ARGV[3]
# ttl ms. The server's clock for every process, so theirs need not agree. The hash lives as
# long as its newest entry (all writers use the same ttl).
_SET_AUDIENCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. (now + tonumber(ARGV[3])))
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"""
# KEYS[1] audience hash. Sums the live entries and drops the lapsed ones.
_GET_AUDIENCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #all, 2 do
  local count, expires = string.match(all[i + 1], '^(%d+):(%d+)$')
  if count and tonumber(expires) > now then
    total = total + tonumber(count)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return total
"""

# KEYS[1] counter zset. ARGV[1] now, ARGV[2] window s, ARGV[3] limit (-1: none, -2: only
# look), ARGV[4] a unique member. Returns {recorded, count, oldest score as a string or ''}.
_HIT_COUNTER = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local recorded = 0
if limit == -1 or (limit >= 0 and n < limit) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  n = n + 1
  recorded = 1
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000)) end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {recorded, n, oldest[2] or ''}
"""

# KEYS[1] hold hash. ARGV[1] until (epoch s), ARGV[2] reason, ARGV[3] until in ms.
# Keeps the later hold; returns {until, reason} as stored.
_SET_HOLD = """
local current = redis.call('HMGET', KEYS[1], 'until', 'reason')
if current[1] and tonumber(current[1]) >= tonumber(ARGV[1]) then return current end
redis.call('HSET', KEYS[1], 'until', ARGV[1], 'reason', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return {ARGV[1], ARGV[2]}
"""


def _cancels() -> int:
    """How many cancels the current task has been asked for (and not yet taken back)."""
    task = asyncio.current_task()
    return 0 if task is None else task.cancelling()


def _lost_cancel(before: int) -> None:
    """Raise the cancel a Redis call swallowed, if any (`before`: `_cancels()` at its start).

    redis-py sends every command through `asyncio.wait_for` (our `socket_timeout`), and on
    Python 3.11 `wait_for` returns the reply instead of raising when its caller is cancelled in
    the loop turn the reply arrives in (CPython gh-86296, fixed by 3.12's rewrite): the cancel
    is lost and the task runs on, so whoever cancelled it and waits for it waits forever (the
    lease tests' hang on a loaded machine: a supervisor's rescan or a lease's renewal outlived
    its `aclose`). A cancel requested during the call that did not end it is raised here, so
    the caller stops at the storage boundary as if the call had been cut short.
    """
    if _cancels() > before:
        raise asyncio.CancelledError


def _redis_errors(
    method: Callable[Concatenate[RedisStorage, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[RedisStorage, P], Coroutine[Any, Any, R]]:
    """Turn client errors into StorageError / StorageUnavailable with the server named, and
    give back a cancel redis-py swallowed (`_lost_cancel`)."""

    async def wrapper(self: RedisStorage, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.closed:  # redis-py would silently reconnect; a closed store should say so
            raise StorageUnavailable(f"Redis storage {self.url} is closed")
        cancels = _cancels()
        try:
            result = await method(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            _lost_cancel(cancels)
            self.outage.failed(exc)
            raise StorageUnavailable(f"Redis at {self.url} is unreachable: {exc}") from exc
        except RedisError as exc:
            _lost_cancel(cancels)
            raise StorageError(f"Redis at {self.url} failed: {exc}") from exc
        _lost_cancel(cancels)
        self.outage.answered()
        return result

    return wrapper


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _num(value: str | None) -> int | None:
    return None if value in (None, "") else int(value)


class RedisStorage:
    def __init__(
        self, client: aioredis.Redis, url: str, prefix: str, cipher: TokenCipher, max_streams: int
    ) -> None:
        self._r = client
        self._p = prefix
        self._cipher = cipher
        self._max_streams = max_streams
        self.url = url  # without credentials: safe to log
        self.shared_across_processes = True
        self.closed = False
        self.outage = Outage(url)
        self._consume_state = client.register_script(_CONSUME_STATE)
        self._create_session = client.register_script(_CREATE_SESSION)
        self._update_existing = client.register_script(_UPDATE_EXISTING)
        self._update_session = client.register_script(_UPDATE_SESSION)
        self._delete_session = client.register_script(_DELETE_SESSION)
        self._put_pending = client.register_script(_PUT_PENDING)
        self._update_pending = client.register_script(_UPDATE_PENDING)
        self._take_pending = client.register_script(_TAKE_PENDING)
        self._touch = client.register_script(_TOUCH_STREAMS)
        self._update_link = client.register_script(_UPDATE_LINK)
        self._put_listener = client.register_script(_PUT_LISTENER)
        self._update_listener = client.register_script(_UPDATE_LISTENER)
        self._put_stream = client.register_script(_PUT_STREAM)
        self._acquire = client.register_script(_ACQUIRE_LEASE)
        self._renew = client.register_script(_RENEW_LEASE)
        self._release = client.register_script(_RELEASE_LEASE)
        self._hit_counter = client.register_script(_HIT_COUNTER)
        self._set_hold = client.register_script(_SET_HOLD)
        self._set_audience = client.register_script(_SET_AUDIENCE)
        self._get_audience = client.register_script(_GET_AUDIENCE)

    @classmethod
    async def open(cls, url: str, cipher: TokenCipher, max_streams: int) -> RedisStorage:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        prefix = query.pop("prefix", ["gamenight"])[0] + ":"
        safe_url = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
        client_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        # redis-py's default pool raises "Too many connections" past 100 concurrent commands
        # (a burst of 200 lookups did); a blocking pool makes the excess wait for a connection.
        pool = aioredis.BlockingConnectionPool.from_url(
            client_url,
            max_connections=MAX_CONNECTIONS,
            timeout=CONNECTION_WAIT_S,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=5,
        )
        client = aioredis.Redis.from_pool(pool)
        storage = cls(client, safe_url, prefix, cipher, max_streams)
        try:
            await storage.ping()
        except StorageError:
            await client.aclose()
            raise
        return storage

    async def aclose(self) -> None:
        self.closed = True
        await self._r.aclose()

    @_redis_errors
    async def ping(self) -> None:
        await self._r.ping()

    def _k(self, *parts: object) -> str:
        return self._p + ":".join(str(p) for p in parts)

    # --- links -----------------------------------------------------------------------------

    @_redis_errors
    async def put_link(self, link: SpotifyLink) -> None:
        await self._r.hset(
            self._k("link", link.discord_user_id),
            mapping={
                "spotify_user_id": link.spotify_user_id,
                "display_name": link.display_name,
                "access_token": self._cipher.encrypt(link.access_token),
                "refresh_token": self._cipher.encrypt(link.refresh_token),
                "expires_at": repr(link.expires_at),
                "scopes": " ".join(link.scopes),
                "linked_at": repr(link.linked_at),
                "status": link.status.value,
            },
        )

    @_redis_errors
    async def get_link(self, discord_user_id: int) -> SpotifyLink | None:
        data = cast(dict[str, str], await self._r.hgetall(self._k("link", discord_user_id)))
        if not data:
            return None
        return SpotifyLink(
            discord_user_id=discord_user_id,
            spotify_user_id=data["spotify_user_id"],
            display_name=data["display_name"],
            access_token=self._cipher.decrypt(data["access_token"]),
            refresh_token=self._cipher.decrypt(data["refresh_token"]),
            expires_at=float(data["expires_at"]),
            scopes=tuple(data["scopes"].split()),
            linked_at=float(data["linked_at"]),
            status=LinkStatus(data["status"]),
        )

    @_redis_errors
    async def set_link_status(
        self, discord_user_id: int, status: LinkStatus, linked_at: float | None = None
    ) -> bool:
        same = "" if linked_at is None else repr(linked_at)
        key = self._k("link", discord_user_id)
        return bool(await self._update_link(keys=[key], args=[same, "status", status.value]))

    @_redis_errors
    async def update_link_tokens(self, link: SpotifyLink) -> bool:
        args = [
            repr(link.linked_at),
            "access_token",
            self._cipher.encrypt(link.access_token),
            "refresh_token",
            self._cipher.encrypt(link.refresh_token),
            "expires_at",
            repr(link.expires_at),
            "scopes",
            " ".join(link.scopes),
        ]
        key = self._k("link", link.discord_user_id)
        return bool(await self._update_link(keys=[key], args=args))

    @_redis_errors
    async def delete_link(self, discord_user_id: int) -> bool:
        return bool(await self._r.delete(self._k("link", discord_user_id)))

    # --- OAuth states ----------------------------------------------------------------------

    @_redis_errors
    async def put_oauth_state(self, state: OAuthState) -> None:
        key = self._k("oauth", state_key(state.state))
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "user": state.discord_user_id,
                    "guild": "" if state.guild_id is None else state.guild_id,
                    "created": repr(state.created_at),
                    "expires": repr(state.expires_at),
                },
            )
            pipe.pexpire(key, _ms(state.expires_at - time.time() + STATE_RETENTION_S))
            await pipe.execute()

    @_redis_errors
    async def consume_oauth_state(self, state: str, now: float) -> StateConsumption:
        key = self._k("oauth", state_key(state))
        result = await self._consume_state(keys=[key], args=[repr(now)])
        check = StateCheck(result[0])
        if check is not StateCheck.OK:
            return StateConsumption(check)
        _, user, guild, created, expires = result
        record = OAuthState(state, int(user), _num(guild), float(created), float(expires))
        return StateConsumption(
            StateCheck.OK if now <= record.expires_at else StateCheck.EXPIRED, record
        )

    # --- pending links ---------------------------------------------------------------------

    @_redis_errors
    async def put_pending_link(self, pending: PendingLink, now: float, max_pending: int) -> None:
        key_hash = state_key(pending.state)
        keys = [self._k("pending", key_hash), self._k("pending_links")]
        args: list[str | int] = [
            dump_pending(pending, self._cipher),
            int(pending.expires_at * 1000),
            int(now * 1000),
            max_pending,
            self._k("pending", ""),
            key_hash,
        ]
        await self._put_pending(keys=keys, args=args)

    @_redis_errors
    async def get_pending_link(self, state: str, now: float) -> PendingTake:
        key = self._k("pending", state_key(state))
        fields = await self._r.hmget(key, "blob", "expires", "taken")
        blob, expires, taken = cast(list[str | None], fields)
        if expires is None or int(expires) < int(now * 1000):
            return PendingTake(None)
        if taken is not None:
            return PendingTake(None, PendingTaker(taken))
        return PendingTake(None if blob is None else load_pending(state, blob, self._cipher))

    @_redis_errors
    async def update_pending_link(self, pending: PendingLink, now: float) -> bool:
        key = self._k("pending", state_key(pending.state))
        args: list[str | int] = [dump_pending(pending, self._cipher), int(now * 1000)]
        return bool(await self._update_pending(keys=[key], args=args))

    @_redis_errors
    async def take_pending_link(self, state: str, now: float, by: PendingTaker) -> PendingTake:
        key = self._k("pending", state_key(state))
        result = await self._take_pending(keys=[key], args=[str(by), int(now * 1000)])
        if result[0] == "ok":
            return PendingTake(load_pending(state, result[1], self._cipher))
        return PendingTake(None, PendingTaker(result[1]) if result[0] == "taken" else None)

    # --- sessions --------------------------------------------------------------------------

    def _session_keys(self, guild_id: int) -> list[str]:
        return [self._k("session", guild_id), self._k("session", guild_id, "listeners")]

    @staticmethod
    def _session_values(fields: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Split fields into flat field/value pairs to set and names to delete (None)."""
        pairs: list[str] = []
        deletes: list[str] = []
        for name, raw in fields.items():
            value = dump_snapshot(raw) if name == "snapshot" else raw
            if value is None:
                deletes.append(name)
            else:
                pairs += [name, repr(value) if isinstance(value, float) else str(value)]
        return pairs, deletes

    @_redis_errors
    async def create_session(self, session: Session) -> bool:
        pairs, _ = self._session_values(
            {
                "host_user_id": session.host_user_id,
                "created_at": session.created_at,
                "channel_id": session.channel_id,
                "status_message_id": session.status_message_id,
                "snapshot": session.snapshot,
                "listen_token": session.listen_token,
                "host_active_at": session.host_active_at,
            }
        )
        listeners: list[str] = []
        for uid, listener in session.listeners.items():
            listeners += [str(uid), dump_listener(listener)]
        keys = [
            *self._session_keys(session.guild_id),
            self._k("sessions"),
            self._k("listen_tokens"),
        ]
        args: list[str | int] = [
            session.guild_id,
            session.listen_token or "",
            len(pairs) // 2,
            *pairs,
            *listeners,
        ]
        return bool(await self._create_session(keys=keys, args=args))

    @_redis_errors
    async def get_session_by_listen_token(self, token: str) -> Session | None:
        guild_id = await self._r.hget(self._k("listen_tokens"), token)
        if guild_id is None:
            return None
        sessions = await self._load_sessions([int(guild_id)])
        return sessions[0] if sessions and sessions[0].listen_token == token else None

    @_redis_errors
    async def get_session(self, guild_id: int) -> Session | None:
        sessions = await self._load_sessions([guild_id])
        return sessions[0] if sessions else None

    @_redis_errors
    async def list_sessions(self) -> list[Session]:
        guild_ids = sorted(int(g) for g in await self._r.smembers(self._k("sessions")))
        return await self._load_sessions(guild_ids)

    async def _load_sessions(self, guild_ids: list[int]) -> list[Session]:
        """The sessions that exist among `guild_ids`, read in one round trip."""
        async with self._r.pipeline(transaction=True) as pipe:
            for guild_id in guild_ids:
                for key in self._session_keys(guild_id):
                    pipe.hgetall(key)
            replies = await pipe.execute()
        sessions = []
        for guild_id, data, listeners in zip(guild_ids, replies[::2], replies[1::2], strict=True):
            if data:
                sessions.append(
                    Session(
                        guild_id=guild_id,
                        host_user_id=int(data["host_user_id"]),
                        created_at=float(data["created_at"]),
                        channel_id=_num(data.get("channel_id")),
                        status_message_id=_num(data.get("status_message_id")),
                        snapshot=load_snapshot(data.get("snapshot")),
                        listen_token=data.get("listen_token"),
                        host_active_at=float(data.get("host_active_at", 0)),
                        listeners={int(u): load_listener(raw) for u, raw in listeners.items()},
                    )
                )
        return sessions

    @_redis_errors
    async def update_session(self, guild_id: int, fields: SessionFields) -> bool:
        check_session_fields(fields)
        pairs, deletes = self._session_values(fields)
        keys = [self._session_keys(guild_id)[0], self._k("listen_tokens")]
        token = fields.get("listen_token") or ""
        args: list[str | int] = [guild_id, token, len(pairs) // 2, *pairs, *deletes]
        return bool(await self._update_session(keys=keys, args=args))

    @_redis_errors
    async def delete_session(self, guild_id: int) -> bool:
        keys = [*self._session_keys(guild_id), self._k("sessions"), self._k("listen_tokens")]
        return bool(await self._delete_session(keys=keys, args=[guild_id]))

    @_redis_errors
    async def put_listener(self, guild_id: int, listener: ListenerState) -> bool:
        keys = self._session_keys(guild_id)
        return bool(
            await self._put_listener(keys=keys, args=[listener.user_id, dump_listener(listener)])
        )

    @_redis_errors
    async def update_listener(self, guild_id: int, listener: ListenerState) -> bool:
        key = self._session_keys(guild_id)[1]
        args: list[str | int] = [listener.user_id, dump_listener(listener)]
        return bool(await self._update_listener(keys=[key], args=args))

    @_redis_errors
    async def remove_listener(self, guild_id: int, user_id: int) -> bool:
        return bool(await self._r.hdel(self._session_keys(guild_id)[1], str(user_id)))

    # --- stream cache ----------------------------------------------------------------------

    @_redis_errors
    async def get_stream(self, track_id: str) -> CachedStream | None:
        data = cast(dict[str, str], await self._r.hgetall(self._k("stream", track_id)))
        return _stream(track_id, data) if data else None

    @_redis_errors
    async def put_stream(self, entry: CachedStream) -> None:
        fields = {
            "video_url": entry.video_url,
            "stream_url": entry.stream_url,
            "expires_at": repr(entry.expires_at),
            "resolved_at": repr(entry.resolved_at),
            "last_access": repr(entry.last_access),
            "title": entry.title,
            "duration_s": repr(entry.duration_s),
            "score": repr(entry.score),
            "http_headers": encode_headers(entry.http_headers),
        }
        flat = [item for pair in fields.items() for item in pair]
        await self._put_stream(
            keys=[
                self._k("stream", entry.track_id),
                self._k("streams", "lru"),
                self._k("streams", "expiry"),
            ],
            args=[
                entry.track_id,
                entry.last_access,
                entry.expires_at,
                self._max_streams,
                self._k("stream", ""),
                *flat,
            ],
        )

    @_redis_errors
    async def touch_streams(self, accessed: Mapping[str, float]) -> None:
        if not accessed:
            return
        flat = [item for track_id, at in accessed.items() for item in (track_id, repr(at))]
        await self._touch(keys=[self._k("streams", "lru")], args=[self._k("stream", ""), *flat])

    @_redis_errors
    async def delete_stream(self, track_id: str) -> bool:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(self._k("stream", track_id))
            pipe.zrem(self._k("streams", "lru"), track_id)
            pipe.zrem(self._k("streams", "expiry"), track_id)
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    @_redis_errors
    async def count_streams(self) -> int:
        return int(await self._r.zcard(self._k("streams", "lru")))

    @_redis_errors
    async def streams_to_refresh(
        self, expiring_before: float, accessed_since: float, limit: int
    ) -> list[CachedStream]:
        lru = self._k("streams", "lru")
        found: list[CachedStream] = []
        offset, page = 0, max(limit, 100)
        while len(found) < limit:
            ids = cast(
                list[str],
                await self._r.zrangebyscore(
                    self._k("streams", "expiry"),
                    "-inf",
                    f"({expiring_before}",
                    start=offset,
                    num=page,
                ),
            )
            if not ids:
                break
            offset += len(ids)
            # One round trip per page: each entry's last access and its fields together.
            async with self._r.pipeline(transaction=False) as pipe:
                for track_id in ids:
                    pipe.zscore(lru, track_id)
                    pipe.hgetall(self._k("stream", track_id))
                replies = await pipe.execute()
            for track_id, score, data in zip(ids, replies[::2], replies[1::2], strict=True):
                if score is not None and score >= accessed_since and data:
                    found.append(_stream(track_id, data))
                    if len(found) == limit:
                        break
        return found

    @_redis_errors
    async def put_failure(self, failure: Failure) -> None:
        value = json.dumps({"reason": failure.reason, "retry_after": failure.retry_after})
        ttl = failure.retry_after - time.time()
        if ttl > 0:
            await self._r.set(self._k("failure", failure.track_id), value, px=_ms(ttl))

    @_redis_errors
    async def get_failure(self, track_id: str, now: float) -> Failure | None:
        raw = await self._r.get(self._k("failure", track_id))
        if raw is None:
            return None
        data = json.loads(raw)
        if data["retry_after"] <= now:
            return None
        return Failure(track_id, data["reason"], data["retry_after"])

    @_redis_errors
    async def delete_failure(self, track_id: str) -> None:
        await self._r.delete(self._k("failure", track_id))

    # --- leases ----------------------------------------------------------------------------

    leases_shared = True  # every process on this Redis

    @_redis_errors
    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        return bool(await self._acquire(keys=[self._k("lease", name)], args=[holder, _ms(ttl)]))

    @_redis_errors
    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        return bool(await self._renew(keys=[self._k("lease", name)], args=[holder, _ms(ttl)]))

    @_redis_errors
    async def lease_holder(self, name: str) -> str | None:
        holder = await self._r.get(self._k("lease", name))
        return None if holder is None else str(holder)

    @_redis_errors
    async def release_lease(self, name: str, holder: str) -> bool:
        channel = self._k("lease-released")
        return bool(
            await self._release(keys=[self._k("lease", name)], args=[holder, channel, name])
        )

    async def lease_releases(self) -> AsyncIterator[str]:
        """Names of leases released from now on, by any process (Redis pub/sub: a message
        published while nobody listens is lost, so waiting holders also retry on a timer)."""
        pubsub = self._r.pubsub(ignore_subscribe_messages=True)
        cancels = _cancels()
        try:
            await pubsub.subscribe(self._k("lease-released"))
            _lost_cancel(cancels)
            async for message in pubsub.listen():
                _lost_cancel(cancels)
                if message.get("type") == "message":
                    data = message["data"]
                    yield data.decode() if isinstance(data, bytes) else str(data)
                cancels = _cancels()  # (the consumer's own business while we were suspended)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            _lost_cancel(cancels)
            raise StorageUnavailable(f"Redis at {self.url} is unreachable: {exc}") from exc
        finally:
            # Bounded: a stop must not wait on a server that stopped answering.
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_S):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # stubs lack it

    # --- named locks: redis-py's Lock (SET NX PX + token-checked release) ---------------

    @asynccontextmanager
    async def named_lock(self, name: str, ttl: float, wait: float) -> AsyncIterator[None]:
        lock = self._r.lock(self._k("lock", name), timeout=ttl, blocking_timeout=wait)
        cancels = _cancels()
        try:
            acquired = await lock.acquire()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            _lost_cancel(cancels)
            raise StorageUnavailable(f"Redis at {self.url} is unreachable: {exc}") from exc
        if not acquired:
            _lost_cancel(cancels)
            raise StorageUnavailable(f"lock {name} stayed busy for {wait:.0f} s")
        try:
            _lost_cancel(cancels)  # (taken: released below like any other way out)
            yield
        finally:
            # Expired meanwhile (LockNotOwnedError) or Redis gone: the TTL frees it anyway.
            with contextlib.suppress(RedisError, OSError):
                await lock.release()

    # --- counters and holds (the Spotify call budget) ------------------------------------

    async def _counter(self, name: str, now: float, window: float, limit: int) -> CounterHit:
        member = f"{now!r}:{uuid.uuid4().hex[:12]}"
        recorded, count, oldest = await self._hit_counter(
            keys=[self._k("counter", name)], args=[repr(now), repr(window), limit, member]
        )
        return CounterHit(bool(recorded), int(count), float(oldest) if oldest else None)

    @_redis_errors
    async def hit_counter(
        self, name: str, now: float, window: float, limit: int | None = None
    ) -> CounterHit:
        return await self._counter(name, now, window, -1 if limit is None else max(0, limit))

    @_redis_errors
    async def count_counter(self, name: str, now: float, window: float) -> CounterHit:
        return await self._counter(name, now, window, -2)

    @_redis_errors
    async def set_hold(self, name: str, until: float, reason: str) -> Hold:
        stored, why = await self._set_hold(
            keys=[self._k("hold", name)], args=[repr(until), reason, _ms(until)]
        )
        return Hold(float(stored), str(why))

    @_redis_errors
    async def get_hold(self, name: str, now: float) -> Hold | None:
        until, reason = await self._r.hmget(self._k("hold", name), ["until", "reason"])
        if until is None or float(until) <= now:
            return None
        return Hold(float(until), str(reason))

    # --- listen-page audience (counted where the browsers are, shown by the shards) ---------

    @_redis_errors
    async def set_audience(self, guild_id: int, process: str, count: int, ttl: float) -> None:
        await self._set_audience(
            keys=[self._k("audience", guild_id)], args=[process, max(0, count), _ms(ttl)]
        )

    @_redis_errors
    async def get_audience(self, guild_id: int) -> int:
        return int(await self._get_audience(keys=[self._k("audience", guild_id)]))


def _stream(track_id: str, data: Mapping[str, str]) -> CachedStream:
    return CachedStream(
        track_id=track_id,
        video_url=data["video_url"],
        stream_url=data["stream_url"],
        expires_at=float(data["expires_at"]),
        resolved_at=float(data["resolved_at"]),
        last_access=float(data["last_access"]),
        title=data["title"],
        duration_s=float(data["duration_s"]),
        score=float(data["score"]),
        http_headers=decode_headers(data.get("http_headers", "")),  # absent before streams2
    )

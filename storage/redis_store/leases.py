"""Sync leases, their release announcements (pub/sub) and named locks on Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.errors import StorageUnavailable
from storage.redis_store.core import CLOSE_S, RedisCore, _cancels, _lost_cancel, _ms, _redis_errors

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


class RedisLeases(RedisCore):
    def _register_scripts(self) -> None:
        super()._register_scripts()
        self._acquire = self._r.register_script(_ACQUIRE_LEASE)
        self._renew = self._r.register_script(_RENEW_LEASE)
        self._release = self._r.register_script(_RELEASE_LEASE)

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

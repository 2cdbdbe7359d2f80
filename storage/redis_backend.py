"""Redis backend (redis.asyncio): for several processes sharing one state.

Keys live under a namespace (`gamenight:` by default, `?prefix=` in the URL changes it). What
must be atomic across processes — single-use OAuth states, one session per guild, the bounded
stream cache, leases — runs as a Lua script on the server.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as aioredis

from storage.crypto import TokenCipher
from storage.errors import StorageError
from storage.redis_store.audience import RedisAudience
from storage.redis_store.core import CONNECTION_WAIT_S, MAX_CONNECTIONS, RedisCore, _redis_errors
from storage.redis_store.leases import RedisLeases
from storage.redis_store.links import RedisLinks
from storage.redis_store.quota import RedisQuota
from storage.redis_store.sessions import RedisSessions
from storage.redis_store.streams import RedisStreams


class RedisStorage(
    RedisLinks, RedisSessions, RedisStreams, RedisLeases, RedisQuota, RedisAudience, RedisCore
):
    """The Redis backend: one class per store (storage/redis_store/), one `Storage` here."""

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

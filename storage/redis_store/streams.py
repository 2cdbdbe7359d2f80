"""The resolved-stream cache and failed lookups on Redis (bounded, least recently used out)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import cast

from storage.codec import (
    decode_headers,
    encode_headers,
)
from storage.records import (
    CachedStream,
    Failure,
)
from storage.redis_store.core import RedisCore, _ms, _redis_errors

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


class RedisStreams(RedisCore):
    def _register_scripts(self) -> None:
        super()._register_scripts()
        self._touch = self._r.register_script(_TOUCH_STREAMS)
        self._put_stream = self._r.register_script(_PUT_STREAM)

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

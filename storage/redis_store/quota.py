"""The Spotify call budget's counters and holds on Redis, shared by every process."""

from __future__ import annotations

import uuid

from storage.records import (
    CounterHit,
    Hold,
)
from storage.redis_store.core import RedisCore, _ms, _redis_errors

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


class RedisQuota(RedisCore):
    def _register_scripts(self) -> None:
        super()._register_scripts()
        self._hit_counter = self._r.register_script(_HIT_COUNTER)
        self._set_hold = self._r.register_script(_SET_HOLD)

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

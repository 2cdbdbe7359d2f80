"""Listen-page browser counts on Redis: one entry per process with its own expiry."""

from __future__ import annotations

from storage.redis_store.core import RedisCore, _ms, _redis_errors

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


class RedisAudience(RedisCore):
    def _register_scripts(self) -> None:
        super()._register_scripts()
        self._set_audience = self._r.register_script(_SET_AUDIENCE)
        self._get_audience = self._r.register_script(_GET_AUDIENCE)

    # --- listen-page audience (counted where the browsers are, shown by the shards) ---------

    @_redis_errors
    async def set_audience(self, guild_id: int, process: str, count: int, ttl: float) -> None:
        await self._set_audience(
            keys=[self._k("audience", guild_id)], args=[process, max(0, count), _ms(ttl)]
        )

    @_redis_errors
    async def get_audience(self, guild_id: int) -> int:
        return int(await self._get_audience(keys=[self._k("audience", guild_id)]))

"""Spotify links, OAuth states and pending links on Redis (the linking flow's stores)."""

from __future__ import annotations

import time
from typing import cast

from storage.codec import (
    STATE_RETENTION_S,
    dump_pending,
    load_pending,
    state_key,
)
from storage.records import (
    LinkStatus,
    OAuthState,
    PendingLink,
    PendingTake,
    PendingTaker,
    SpotifyLink,
    StateCheck,
    StateConsumption,
)
from storage.redis_store.core import RedisCore, _ms, _num, _redis_errors

# KEYS[1] state hash key. ARGV[1] now. Returns {check, user, guild, created, expires}.
_CONSUME_STATE = """
local fields = redis.call('HMGET', KEYS[1], 'user', 'guild', 'created', 'expires', 'used')
if not fields[1] then return {'unknown'} end
if fields[5] then return {'used'} end
redis.call('HSET', KEYS[1], 'used', ARGV[1])
return {'ok', fields[1], fields[2], fields[3], fields[4]}
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

# KEYS[1] link hash. ARGV[1] linked_at as stored ('' for any), then field/value pairs.
# Only an existing link of that same linking changes: never resurrects or crosses a re-link.
_UPDATE_LINK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'linked_at') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


class RedisLinks(RedisCore):
    def _register_scripts(self) -> None:
        super()._register_scripts()
        self._consume_state = self._r.register_script(_CONSUME_STATE)
        self._put_pending = self._r.register_script(_PUT_PENDING)
        self._update_pending = self._r.register_script(_UPDATE_PENDING)
        self._take_pending = self._r.register_script(_TAKE_PENDING)
        self._update_link = self._r.register_script(_UPDATE_LINK)

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

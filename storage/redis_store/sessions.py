"""Game night sessions and their listeners on Redis: a hash per session, one per listener set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storage.base import SessionFields
from storage.codec import (
    check_session_fields,
    dump_listener,
    dump_snapshot,
    load_listener,
    load_snapshot,
)
from storage.records import (
    ListenerState,
    Session,
)
from storage.redis_store.core import RedisCore, _num, _redis_errors

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


class RedisSessions(RedisCore):
    def _register_scripts(self) -> None:
        super()._register_scripts()
        self._create_session = self._r.register_script(_CREATE_SESSION)
        self._update_existing = self._r.register_script(_UPDATE_EXISTING)
        self._update_session = self._r.register_script(_UPDATE_SESSION)
        self._delete_session = self._r.register_script(_DELETE_SESSION)
        self._put_listener = self._r.register_script(_PUT_LISTENER)
        self._update_listener = self._r.register_script(_UPDATE_LISTENER)

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

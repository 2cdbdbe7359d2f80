"""Fake Discord with sharding: several gateway sessions, each guild's events on its shard only.

`ShardedDiscord` is the fake Discord (tests/fakes/discord.py) for a bot application that runs
`shard_count` shards, possibly in several processes. What real Discord does, and this models
(gateway docs, "Sharding"; shared/REALITY.md: every session of a token gets every event unless
sharded):
- IDENTIFY carries `shard: [shard_id, num_shards]`; a shard id outside 0..num_shards-1 is
  closed with 4010 "Invalid shard". A session without `shard` is shard [0, 1] (every guild).
- A guild's events (GUILD_CREATE, INTERACTION_CREATE, MESSAGE_CREATE, PRESENCE_UPDATE, ...) go
  only to the sessions whose shard is `(guild_id >> 22) % num_shards`; events without a guild
  (DMs) go to shard 0. READY lists only the shard's guilds, and GUILD_CREATE follows for each.
- Every session has its own sequence numbers and RESUMEs with its own session id: a process
  that dies leaves its session resumable, and its events queue there, not elsewhere.
- `GET /gateway/bot` recommends `shard_count` shards.
- A session whose shard would hold more than `max_guilds_per_session` guilds (Discord: 2,500,
  "Each shard can only support a maximum of 2500 guilds") is closed with 4011 "Sharding
  required" at IDENTIFY: an unsharded bot (a session without `shard`) stops connecting once it
  is in more guilds than that (gateway docs, "Sharding" and close code 4011).

Not modelled: the IDENTIFY rate. Discord lets `session_start_limit.max_concurrency` sessions
IDENTIFY per 5 s (1 for most bots; buckets by `shard_id % max_concurrency`) and 1,000 session
starts a day; this fake accepts any number at once and reports `max_concurrency: 1`, so a test
here cannot show several shards of one process queueing their IDENTIFYs (discord.py does that
itself for the shards it runs; separate processes must not IDENTIFY inside one 5 s window).

    fake = await ShardedDiscord(shard_count=2).start()
    g0 = fake.add_guild_on_shard(0, "Zero", owner=fake.owner)
    ... two bot processes with DISCORD_SHARD_COUNT=2 and DISCORD_SHARD_IDS=0 / 1 ...
    await fake.wait_shards({0, 1})
    await fake.slash("link", member, guild=g0)   # reaches only shard 0's process
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.discord import JSON, FakeDiscord, Guild, Member, _Connection, json_response

INVALID_SHARD = 4010
SHARDING_REQUIRED = 4011
MAX_GUILDS_PER_SESSION = 2500  # Discord's limit per shard (gateway docs, "Sharding")
SNOWFLAKE_LOW_BITS = 22  # below the timestamp: worker, process and increment


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's sharding formula."""
    return (guild_id >> SNOWFLAKE_LOW_BITS) % shard_count


def guild_of(event: str, data: JSON) -> int | None:
    """The guild an event belongs to (None: not a guild's, e.g. a DM)."""
    if data.get("guild_id") is not None:
        return int(data["guild_id"])
    if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE") and "id" in data:
        return int(data["id"])
    return None


@dataclass
class GatewaySession:
    """One IDENTIFYed session: its shard, its connection (None or closed: away) and events."""

    session_id: str
    shard: tuple[int, int]  # (shard_id, num_shards) as the client claimed it
    conn: _Connection | None
    seq: int = 0
    events: list[JSON] = field(default_factory=list)

    def receives(self, guild_id: int | None) -> bool:
        shard_id, count = self.shard
        return shard_id == 0 if guild_id is None else shard_of(guild_id, count) == shard_id

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.ws.closed


class ShardedDiscord(FakeDiscord):
    """The fake Discord with several gateway sessions, routing guilds to shards."""

    def __init__(
        self,
        *,
        shard_count: int = 2,
        max_guilds_per_session: int = MAX_GUILDS_PER_SESSION,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.shard_count = shard_count
        self.max_guilds_per_session = max_guilds_per_session
        self.sessions: list[GatewaySession] = []

    # ---------------------------------------------------------------- world

    def add_guild_on_shard(self, shard_id: int, name: str, *, owner: Member) -> Guild:
        """A guild whose id puts it on `shard_id` (of `shard_count`)."""
        guild = self.add_guild(name, owner=owner)
        del self.guilds[guild.id]
        high = guild.id >> SNOWFLAKE_LOW_BITS
        high += (shard_id - high) % self.shard_count
        low = guild.id & ((1 << SNOWFLAKE_LOW_BITS) - 1)
        guild.id = (high << SNOWFLAKE_LOW_BITS) | low
        self.guilds[guild.id] = guild
        return guild

    def connected_shards(self) -> set[int]:
        return {s.shard[0] for s in self.sessions if s.connected}

    async def wait_shards(self, shard_ids: set[int], within: float = 30.0) -> None:
        """Wait until a session is connected on each of `shard_ids`."""
        await self.wait_until(lambda: shard_ids <= self.connected_shards(), within)

    # ---------------------------------------------------------------- gateway

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return json_response(
            {"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": limit}
        )

    async def _identify(self, conn: _Connection, data: JSON) -> None:
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard_id, count = data.get("shard") or (0, 1)
        if not 0 <= shard_id < count:
            await conn.ws.close(code=INVALID_SHARD, message=b"Invalid shard.")
            return
        if await self.presence.identify(conn.ws, data):
            return  # 4014: privileged intents not enabled in the developer portal
        session = GatewaySession(secrets.token_hex(16), (shard_id, count), conn)
        guilds = [g for g in self.guilds.values() if session.receives(g.id)]
        if len(guilds) > self.max_guilds_per_session:
            await conn.ws.close(code=SHARDING_REQUIRED, message=b"Sharding required.")
            return
        self.identify_count += 1
        self._conn = conn  # the latest session, for the base class's helpers
        self.sessions.append(session)
        await self._send(
            session,
            "READY",
            {
                "v": 10,
                "user": {**self.bot.user(), "verified": True, "mfa_enabled": False},
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.session_id,
                "session_type": "normal",
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.application_id), "flags": 0},
                "shard": [shard_id, count],
                "private_channels": [],
                "relationships": [],
            },
        )
        for guild in guilds:
            payload = self.presence.guild_create(guild, self.guild_payload(guild))
            await self._send(session, "GUILD_CREATE", payload)

    async def _resume(self, conn: _Connection, data: JSON) -> None:
        session = next((s for s in self.sessions if s.session_id == data.get("session_id")), None)
        if data.get("token") != self.token or session is None:
            await conn.send({"op": 9, "d": False})  # invalid session: the client identifies anew
            return
        self.resume_count += 1
        session.conn = self._conn = conn
        seen = int(data.get("seq") or 0)
        for event in session.events:
            if event["s"] > seen:
                await conn.send(event)
        await self._send(session, "RESUMED", {})

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send an event to every session of its guild's shard (queued while one is away)."""
        guild_id = guild_of(event, data)
        for session in self.sessions:
            if session.receives(guild_id):
                await self._send(session, event, data)

    async def _send(self, session: GatewaySession, event: str, data: JSON) -> None:
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(payload)
        if session.connected:
            assert session.conn is not None
            with contextlib.suppress(ConnectionError):  # kept for RESUME, as Discord does
                await session.conn.send(payload)

    async def stop(self) -> None:
        for session in self.sessions:
            if session.connected:
                assert session.conn is not None
                await session.conn.ws.close()
        await super().stop()

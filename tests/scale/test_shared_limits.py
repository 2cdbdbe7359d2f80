"""Spotify limits shared by every process on one Redis (issue #15, "Shared limits on Redis").

These two need the `quota` branch's app-wide limiter and per-user token-refresh lock on Redis;
until it is merged each process keeps its own in memory and both tests fail: that is the defect
they pin down (see the report of the `scale` branch). Two real shard processes, as in
tests/scale/test_three_processes.py:

- a 429 with Retry-After that one process meets holds the other too: Spotify's rate limit is
  per app, and a second process calling on would only extend the penalty (REALITY.md, "Rate
  limit: ... per app");
- 20 concurrent `/me` calls by one user whose access token expired, half through each process,
  refresh the token exactly once: with rotating refresh tokens the loser of a second refresh
  would present a revoked token, get `invalid_grant` and mark a good link as needing relink.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from pathlib import Path

from storage.records import LinkStatus
from tests.scale.cluster import Cluster

# A roomy daily budget: hosts without Discord presence are polled at the budget's pace (about
# every 11 s at the default 3,000 a day), at its 2 s floor here, so shard 0 soon reads its host.
SETTINGS = {
    "SYNC_POLL_INTERVAL": "0.5",
    "HOST_IDLE_TIMEOUT": "0",
    "SPOTIFY_DAILY_BUDGET": "1000000",
}
RETRY_AFTER_S = 4
IN_FLIGHT_GRACE_S = 0.3  # calls already sent when the 429 was answered may still arrive


async def test_a_retry_after_seen_by_one_process_holds_the_others(
    redis_url: str, tmp_path: Path
) -> None:
    async with Cluster.open(redis_url, tmp_path, **SETTINGS) as c:
        procs = [await c.start(f"shard{i}", shard=i) for i in (0, 1)]
        hosts = [await c.player(f"host{i}", i) for i in (0, 1)]
        fans = [await c.player(f"fan{i}", i) for i in (0, 1)]
        tracks = [t.id for t in c.spotify.catalog[:2]]
        for i in (0, 1):
            c.spotify.player(f"host{i}").load([tracks[i]], position_ms=20_000)
        await c.ready(*procs)
        await c.publish_commands()
        started = time.monotonic()
        for i in (0, 1):
            await c.command("gamenight start", hosts[i], i)
            await c.command("gamenight join", fans[i], i)
        for i in (0, 1):
            await c.first_play(f"fan{i}", tracks[i], after=started, within=15)

        # Shard 0's next read of its host meets the 429.
        fault = c.spotify.fail(
            429, method="GET", path="/v1/me/player", account="host0", retry_after=RETRY_AFTER_S
        )
        deadline = time.monotonic() + 10
        while not fault.hits:
            assert time.monotonic() < deadline, "shard 0 never read its host"
            await asyncio.sleep(0.02)
        (limited,) = [r for r in c.spotify.log if r.status == 429]
        assert c.sender(limited) == "shard0"
        await asyncio.sleep(RETRY_AFTER_S - 0.5)
        held_from = limited.answered_at + IN_FLIGHT_GRACE_S
        held_until = limited.answered_at + RETRY_AFTER_S - 0.5
        during = [
            r
            for r in c.spotify.log
            if r.path.startswith("/v1/") and held_from <= r.received_at <= held_until
        ]
        assert not during, f"calls during the Retry-After: {Counter(map(c.sender, during))}"


async def test_twenty_expired_token_calls_across_processes_refresh_once(
    redis_url: str, tmp_path: Path
) -> None:
    async with Cluster.open(redis_url, tmp_path, **SETTINGS) as c:
        procs = [await c.start(f"shard{i}", shard=i) for i in (0, 1)]
        duo = await c.player("duo", 0, both=True)  # a member of both shards' guilds
        await c.ready(*procs)
        await c.publish_commands()
        c.spotify.rotate_refresh_tokens = True
        c.spotify.expire_access_tokens("duo")
        link = await c.store.get_link(duo.user_id)
        assert link is not None
        await c.store.put_link(dataclasses.replace(link, expires_at=time.time() - 60))

        # A slow token endpoint (the first refresh answers after 1 s) makes sure the calls
        # meet while a refresh is under way, rather than only by the luck of timing.
        c.spotify.hang(method="POST", path="/api/token", seconds=1.0)
        at = time.monotonic()
        asked = await asyncio.gather(
            *(c.discord.slash("me", duo, guild=c.guild[i % 2]) for i in range(20))
        )
        replies = await asyncio.gather(*(ix.reply(within=20) for ix in asked))
        refreshes = [
            r
            for r in c.spotify.log
            if r.path == "/api/token"
            and r.received_at >= at
            and isinstance(r.body, dict)
            and r.body.get("grant_type") == "refresh_token"
        ]
        assert len(refreshes) == 1, f"refreshes by process: {Counter(map(c.sender, refreshes))}"
        assert all("Spotify answers for" in reply.text for reply in replies)
        link = await c.store.get_link(duo.user_id)
        assert link is not None and link.status is LinkStatus.OK

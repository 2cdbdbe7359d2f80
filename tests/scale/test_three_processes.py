"""Three real processes on one Redis: two Discord shards and a web-only replica (issue #15).

Everything as an operator runs it (tests/scale/cluster.py): `python -m bot` with
DISCORD_SHARD_COUNT=2 and DISCORD_SHARD_IDS=0 or 1, and `python -m bot web`, against the sharded
fake Discord, a fake Spotify (one port per process: every command says who sent it) and the
test session's redis-server. One game night runs in a guild of each shard.

- Slash commands work in the guilds of both shards, each answered by its shard's process only,
  and each game night's loop runs in its own shard's process.
- The web-only process serves the HTTP API from the shared cache, opens no gateway session and
  commands nobody.
- SIGTERM of shard 1: its game night moves to shard 0 within 1 s (release on shutdown).
- A new shard-1 process comes up; then `kill -9` of shard 0: both game nights move to the new
  process within 3 s (the lease lapses).
- Throughout, a listener is commanded by one process at a time (never alternately), the process
  that lost a guild sends nothing for it afterwards, and each host change after a hand-over is
  commanded exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp

from storage.records import CachedStream
from tests.scale.cluster import Cluster, Proc

# A lease that lapses fast enough for the 3 s kill -9 target with the existing takeover (the
# engine branch's renewal task and release notice make hand-over faster still).
SETTINGS = {"SYNC_LEASE_TTL": "1.5", "SYNC_POLL_INTERVAL": "0.5", "HOST_IDLE_TIMEOUT": "0"}
KILL_HANDOVER_S = 3.0
TERM_HANDOVER_S = 1.0


async def test_two_shards_and_a_web_replica_share_the_game_nights(
    redis_url: str, tmp_path: Path
) -> None:
    async with Cluster.open(redis_url, tmp_path, **SETTINGS) as c:
        shard0 = await c.start("shard0", shard=0)
        shard1 = await c.start("shard1", shard=1)
        web = await c.start("web")
        hosts = [await c.player(f"host{i}", i) for i in (0, 1)]
        listeners = [await c.player(f"fan{i}", i) for i in (0, 1)]
        tracks = [t.id for t in c.spotify.catalog[:6]]
        for i in (0, 1):
            c.spotify.player(f"host{i}").load([tracks[i]], position_ms=20_000)
        await c.ready(shard0, shard1, web)

        await c.publish_commands()
        started = time.monotonic()
        for i in (0, 1):
            assert "started" in (await c.command("gamenight start", hosts[i], i)).lower()
            await c.command("gamenight join", listeners[i], i)
        for i in (0, 1):
            await c.first_play(f"fan{i}", tracks[i], after=started, within=15)
        assert c.owners("fan0") == ["shard0"] and c.owners("fan1") == ["shard1"]
        assert len(c.discord.sessions) == 2  # the web replica opened no gateway session

        await check_web_replica(c, web, tracks[0])

        # SIGTERM of shard 1: shard 0 takes its game night over. The host skips only once
        # shard 1 is stopping (its loops are cancelled right after that line): skipping before
        # the signal would let shard 1's in-flight poll see the new track and command fan1 itself.
        at = time.monotonic()
        shard1.process.send_signal(signal.SIGTERM)
        await c.wait_log(shard1, "shutting down", within=5)
        c.spotify.player("host1").load([tracks[2]])
        term_handover = (await c.first_play("fan1", tracks[2], after=at)).received_at - at
        assert await asyncio.wait_for(shard1.process.wait(), 20) == 0, shard1.output()[-3000:]

        # A new shard-1 process, then kill -9 of shard 0: the new one takes both over.
        shard1b = await c.start("shard1b", shard=1)
        await c.ready(shard1b)
        assert "Listeners (1)" in (await c.command("gamenight status", hosts[1], 1))
        # It resumes its own shard's game night at start (waiting for the lease), and finds
        # the other shard's in its rescan.
        await c.wait_log(shard1b, "resumed 1 game night(s) from storage")
        await c.wait_log(shard1b, "started 1 sync loop(s) for sessions found in storage")
        # (No await between the skips and the kill: shard 0 runs no more code once it is sent.)
        at = time.monotonic()
        c.spotify.player("host0").load([tracks[3]])
        c.spotify.player("host1").load([tracks[4]])
        os.kill(shard0.pid, signal.SIGKILL)
        took = [await c.first_play(f"fan{i}", tracks[3 + i], after=at) for i in (0, 1)]
        kill_handover = max(r.received_at for r in took) - at
        await asyncio.sleep(1.0)  # room for a double command to show

        print(f"hand-over after SIGTERM: {term_handover:.2f} s")
        print(f"hand-over after kill -9: {kill_handover:.2f} s")
        print("commands by process:", c.commands_by_process(["fan0", "fan1"]))
        assert {c.sender(r) for r in took} == {"shard1b"}
        assert c.owners("fan0") == ["shard0", "shard1b"]
        assert c.owners("fan1") == ["shard1", "shard0", "shard1b"]
        for i, track in ((1, tracks[2]), (0, tracks[3]), (1, tracks[4])):
            assert len(c.played(f"fan{i}", track, after=started)) == 1, f"fan{i} {track}"
        assert not c.wrong_process_commands("fan0") and not c.wrong_process_commands("fan1")
        assert "web" not in c.commands_by_process(["fan0", "fan1", "host0", "host1"])
        assert kill_handover <= KILL_HANDOVER_S, f"kill -9 hand-over took {kill_handover:.2f} s"
        assert term_handover <= TERM_HANDOVER_S, f"SIGTERM hand-over took {term_handover:.2f} s"

        for proc in (shard1b, web):
            assert await c.terminate(proc) == 0, proc.output()[-3000:]
        for proc in (shard1, shard1b, web):
            assert "Traceback" not in proc.output(), proc.output()[-3000:]
            assert "NETGUARD BLOCKED" not in proc.output()


async def check_web_replica(c: Cluster, web: Proc, track_id: str) -> None:
    """The web-only process answers the v1 API from the shared Redis cache."""
    now = time.time()
    await c.store.put_stream(
        CachedStream(
            track_id,
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "https://rr1.googlevideo.example/videoplayback?expire=9999999999",
            expires_at=now + 3600,
            resolved_at=now,
            last_access=now,
            title="cached by another process",
        )
    )
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{web.http_port}/v1/tracks/{track_id}") as response,
    ):
        assert response.status == 200, await response.text()
        body = await response.json()
    assert "dQw4w9WgXcQ" in str(body)

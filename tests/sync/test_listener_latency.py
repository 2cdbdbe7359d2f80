"""What a listener's one-way latency is learnt from (core/sync/clock.py: half a round trip)."""

from __future__ import annotations

import aiohttp

from core.spotify import SpotifyClient
from tests.sync.conftest import spotify_config
from tests.sync.rig import Rig

GUILD, HOST = 9, 1
LISTENERS = (2, 3, 4, 5)


async def test_waiting_for_a_spotify_thread_is_not_taken_for_network_latency(rig: Rig) -> None:
    """Four first reads at once through one spotipy thread: the last waits three round trips
    for it. Only the round trip itself is latency; counted from before that wait (as it was),
    each listener's position aimed up to 120 ms too far ahead (at 200 sessions, ~180 ms)."""
    rig.fake.set_latency(0.08)  # a round trip of 80 ms: 40 ms one way
    rig.fake.lag.off()
    for uid in (HOST, *LISTENERS):
        await rig.link(uid, f"user{uid}")
    await rig.session(GUILD, HOST, LISTENERS)
    rig.player(HOST).load([t.id for t in rig.fake.catalog[:3]], position_ms=30_000)
    async with aiohttp.ClientSession() as http:
        rig.client = SpotifyClient(spotify_config(rig.fake, max_workers=1), rig.store, http)
        try:
            engine = rig.engine(GUILD)
            await engine.step()  # reads the host and every (unknown) listener, then plays
            latencies = {uid: m.latency for uid, m in engine.listeners.members.items()}
            await engine.aclose()
        finally:
            await rig.client.aclose()
    assert all(latency.samples >= 1 for latency in latencies.values()), latencies
    # 40 ms plus this machine's own time around the request; was 80-160 ms for the later ones.
    assert all(latency.one_way_s < 0.075 for latency in latencies.values()), latencies

"""The reference game night of issue #10: Spotify calls per hour and propagation, with Discord
presence and without, against the old 1 Hz engine and the original 2 s worker.

Run:  python -m tests.bench.sync --night     (about 5 minutes)

Host + 4 listeners; an hour = 15 tracks, 4 of them skipped by hand, 2 seeks, 2 pause/resume.
Part 1, the hour in compressed time (x24: 10 s tracks, the hour takes 150 s; the engine's
time-driven spending — quota window, pace, safety polls, drift budget — compressed alike), one
session per presence delay (0.3 / 1 / 2 s, jitter +0.2 s) and one without presence, each with
its own SpotifyClient and quota governor (default budget) as if each were its own account:
calls per hour, and with presence the propagation figures (they do not depend on the
compressed cadences: presence, confirmation read, commands, end-of-track read).
Part 2, in real time (5 min tracks): skips and pause/resume for the engine without presence
(paced poll), the old engine (no governor: 1 Hz) and the original worker (baseline_loop.py).

The fake Spotify runs in a child process with 80 ± 40 ms per call. Discord's presence is
modelled here: the host's player is watched through the fake's control API (free, not the Web
API) and each change reaches the engine's PresenceBoard after the delay, as the bot's listener
would put it there (the real discord.py path is tested in tests/bot/test_presence.py; the probe
measured its handler latency at ~0.3 ms). The fake's realism is on as by default: read lag
0.3 s after a command, device start-up delay 0.15 s (position stands still until audio starts),
202 while a device wakes. Skew is read HEARD_AFTER_S after a sync lands, once audio started.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import aiohttp

from core.presence import Listening, Presence, PresenceBoard
from core.spotify import SpotifyClient, SpotifyConfig
from core.spotify.quota import QuotaGovernor
from core.sync.engine import EngineConfig, SyncEngine
from core.sync.schedule import DriftConfig, QuotaConfig
from storage import Storage, TokenCipher, open_storage
from storage.records import ListenerState, Session, SpotifyLink
from tests.bench.baseline_loop import run_baseline
from tests.bench.spotify_process import SpotifyProcess
from tests.bench.sync import LATENCY, NullEvents, pct

VERBOSE = True
K = 24  # time compression of part 1
SHORT_MS = 10_000
LISTENERS = 4
HEARD_AFTER_S = 0.4  # skew is read this long after a sync lands (past the start-up delay)
State = list[object]  # [track_id, position_ms, is_playing, changed_at]


@dataclass
class Night:
    name: str
    guild_id: int
    host: str
    listeners: list[str]
    host_uid: int
    uids: list[int]
    delay: float | None  # presence delay; None: no presence
    figures: dict[str, list[float]] = field(default_factory=dict)
    skews: list[float] = field(default_factory=list)
    calls: int = 0

    def add(self, kind: str, value: float) -> None:
        self.figures.setdefault(kind, []).append(value)


async def state(sp: SpotifyProcess, accounts: list[str]) -> dict[str, State]:
    return dict(await sp.call("/state", accounts=accounts))


async def settle(
    sp: SpotifyProcess, n: Night, since: float, ok: Callable[[State, State], bool], kind: str
) -> None:
    """Wait until every listener satisfies `ok` against the host; record how long and skew."""
    deadline = time.time() + 25
    while time.time() < deadline:
        seen = await state(sp, [n.host, *n.listeners])
        host, others = seen[n.host], [seen[a] for a in n.listeners]
        if all(ok(host, o) for o in others):
            landed = max(float(o[3]) for o in others)  # type: ignore[arg-type]
            n.add(kind, max(0.0, landed - since))
            if VERBOSE:
                print(f"  {n.name}: {kind} {max(0.0, landed - since):.2f} s", flush=True)
            if host[2]:
                # What is heard once the listeners' devices started (the fake's start-up delay
                # keeps a just-commanded position still for 0.15 s): read again a little later.
                await asyncio.sleep(HEARD_AFTER_S)
                seen = await state(sp, [n.host, *n.listeners])
                host = seen[n.host]
                n.skews.extend(
                    abs(int(host[1]) - int(o[1]))  # type: ignore[call-overload]
                    for o in (seen[a] for a in n.listeners)
                    if o[0] == host[0] and o[2]
                )
            return
        await asyncio.sleep(0.05)
    n.add(kind + " (never)", 1)
    print(f"  {n.name}: {kind} never settled", flush=True)


def same_track(host: State, other: State) -> bool:
    return other[0] == host[0] and bool(other[2])


def in_step(host: State, other: State) -> bool:
    return same_track(host, other) and abs(int(host[1]) - int(other[1])) < 500  # type: ignore[call-overload]


def paused(host: State, other: State) -> bool:
    return not other[2]


async def presence_model(
    sp: SpotifyProcess,
    n: Night,
    board: PresenceBoard,
    durations: dict[str, int],
    stop: asyncio.Event,
) -> None:
    """Discord: each change of the host's player reaches the board `delay` (+ jitter) later."""
    rng = random.Random(n.guild_id)
    last: tuple[object, ...] | None = None
    while not stop.is_set():
        host = (await state(sp, [n.host]))[n.host]
        read_at = time.time()
        start = round(time.time() * 1000) - int(host[1]) if host[2] else None  # type: ignore[call-overload]
        key = (host[0], bool(host[2]))
        moved = (
            last is not None
            and start is not None
            and last[2] is not None
            and abs(start - last[2]) > 300
        )  # type: ignore[operator]
        if last is None or key != last[:2] or moved:
            last = (*key, start)
            asyncio.get_running_loop().call_later(
                (n.delay or 0) + rng.uniform(0, 0.2), deliver, board, n, host, read_at, durations
            )
        elif start is not None:
            last = (*key, last[2])
        await asyncio.sleep(0.02)


def deliver(
    board: PresenceBoard, n: Night, host: State, read_at: float, durations: dict[str, int]
) -> None:
    listening = None
    if host[2] and host[0]:
        track = str(host[0])
        # Discord sends timestamps.start (wall clock); the bot computes the position on arrival.
        position = int(host[1]) + round((time.time() - read_at) * 1000)  # type: ignore[call-overload]
        listening = Listening(track, "t", ("a",), "b", durations[track], position)
    board.update(Presence(n.host_uid, listening, time.monotonic()))


async def open_world(sp: SpotifyProcess, nights: list[Night], short: int):  # type: ignore[no-untyped-def]
    accounts = [a for n in nights for a in (n.host, *n.listeners)]
    answer = await sp.call("/setup", accounts=accounts, latency=LATENCY, rate_limit=None,
                           short_tracks=short, short_ms=SHORT_MS)  # fmt: skip
    return answer


async def store_nights(
    store: Storage, nights: list[Night], tokens: dict[str, list[object]]
) -> None:
    now = time.time()
    for n in nights:
        for uid, account in zip([n.host_uid, *n.uids], [n.host, *n.listeners], strict=True):
            access, refresh, expires_at, scopes = tokens[account]
            await store.put_link(SpotifyLink(uid, account, account, str(access), str(refresh),
                                             float(expires_at), tuple(scopes), now))  # type: ignore[arg-type]  # fmt: skip
        states = {uid: ListenerState(uid, joined_at=now) for uid in n.uids}
        await store.create_session(Session(n.guild_id, n.host_uid, now, host_active_at=now,
                                           listeners=states))  # fmt: skip


def compressed(k: float) -> EngineConfig:
    q = QuotaConfig()
    quota = replace(q, night_s=q.night_s / k, min_poll_s=q.min_poll_s / k,
                    max_poll_s=q.max_poll_s / k, min_safety_s=q.min_safety_s / k,
                    max_safety_s=q.max_safety_s / k)  # fmt: skip
    d = DriftConfig()
    drift = replace(d, interval_s=d.interval_s / k, paused_interval_s=d.paused_interval_s / k)
    return EngineConfig(quota=quota, drift=drift)


def make_night(name: str, i: int, tag: str, delay: float | None) -> Night:
    base = 10_000 * (i + 1)
    return Night(name, i + 1, f"{tag}h{i}", [f"{tag}l{i}x{j}" for j in range(LISTENERS)], base,
                 [base + j + 1 for j in range(LISTENERS)], delay)  # fmt: skip


async def hour_script(sp: SpotifyProcess, n: Night, queue: list[str], k: float) -> None:
    """15 tracks; 4 skipped by hand (mid-track), 2 seeks, 2 pause/resume; natural ends else."""
    track_s = SHORT_MS / 1000
    await sp.call("/load", account=n.host, track_ids=queue, position_ms=0)
    await settle(sp, n, time.time(), same_track, "start")
    events = {2: "seek", 4: "skip", 5: "pause", 7: "skip", 9: "seek", 10: "skip", 12: "pause",
              13: "skip"}  # fmt: skip
    for index in range(15):
        event = events.get(index)
        if event is None:  # the track ends by itself
            await natural_end(sp, n)
            continue
        await asyncio.sleep(track_s * 0.3)
        if event == "skip":
            done = await sp.call("/act", accounts=[n.host], action="next")
            await settle(sp, n, done["at"][n.host], same_track, "skip")
            continue
        if event == "seek":
            done = await sp.call("/act", accounts=[n.host], action="seek", position_ms=6_000)
            await settle(sp, n, done["at"][n.host], in_step, "seek")
        else:
            done = await sp.call("/act", accounts=[n.host], action="pause")
            await settle(sp, n, done["at"][n.host], paused, "pause")
            await asyncio.sleep(max(0.0, 2.5 - (time.time() - done["at"][n.host])))
            done = await sp.call("/act", accounts=[n.host], action="resume")
            await settle(sp, n, done["at"][n.host], in_step, "resume")
        await natural_end(sp, n)


async def natural_end(sp: SpotifyProcess, n: Night) -> None:
    """Let the host's track run out; time the listeners' arrival on the next one."""
    seen = (await state(sp, [n.host]))[n.host]
    end_at = time.time() + (SHORT_MS - int(seen[1])) / 1000  # type: ignore[call-overload]
    await asyncio.sleep(max(0.0, end_at - time.time()) + 0.01)
    await settle(sp, n, end_at, same_track, "natural end")


async def realtime_script(sp: SpotifyProcess, n: Night, queue: list[str]) -> None:
    await sp.call("/load", account=n.host, track_ids=queue, position_ms=30_000)
    await settle(sp, n, time.time(), same_track, "start")
    rng = random.Random(n.guild_id)
    for _ in range(4):
        await asyncio.sleep(rng.uniform(2.0, 4.0))
        done = await sp.call("/act", accounts=[n.host], action="next")
        await settle(sp, n, done["at"][n.host], same_track, "skip")
    for _ in range(2):
        await asyncio.sleep(rng.uniform(2.0, 4.0))
        done = await sp.call("/act", accounts=[n.host], action="pause")
        await settle(sp, n, done["at"][n.host], paused, "pause")
        await asyncio.sleep(2.0)
        done = await sp.call("/act", accounts=[n.host], action="resume")
        await settle(sp, n, done["at"][n.host], in_step, "resume")


async def run_part(sp: SpotifyProcess, nights: list[Night], *, k: float, short: int,
                   kinds: dict[str, str]) -> None:  # fmt: skip
    answer = await open_world(sp, nights, short)
    catalog = [(t, d) for t, d in answer["catalog"]]
    durations = dict(catalog)
    stop = asyncio.Event()
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_storage(f"sqlite:///{tmp}/night.db", TokenCipher.generate())
        await store_nights(store, nights, answer["tokens"])
        config = SpotifyConfig("fake-client-id", "fake-client-secret", "http://127.0.0.1:9/cb",
                               api_base=sp.base, accounts_base=sp.base, max_workers=16,
                               rate_limit=10**9)  # fmt: skip
        async with aiohttp.ClientSession() as http:
            tasks, engines, clients = [], [], []
            for n in nights:
                client = SpotifyClient(config, store, http)
                # The default budget, its window compressed like the hour.
                client.quota = QuotaGovernor(client.quota.budget, window=86_400 / k)
                clients.append(client)
                kind = kinds[n.name]
                if kind == "baseline":
                    tasks.append(
                        asyncio.create_task(run_baseline(client, n.host_uid, n.uids, stop))
                    )
                    continue
                board = None
                if n.delay is not None:
                    board = PresenceBoard()
                    board.available = True
                    tasks.append(asyncio.create_task(presence_model(sp, n, board, durations, stop)))
                engine = SyncEngine(
                    n.guild_id, client=client, sessions=store, announcer=NullEvents(),
                    config=compressed(k) if kind == "budget" else EngineConfig(),
                    leases=store, hold=lambda c=client: c.blocked_for,  # type: ignore[misc]
                    presence=board, governor=client.quota if kind == "budget" else None,
                )  # fmt: skip
                await engine.start()
                engines.append(engine)
            ids = [t for t, _ in catalog]
            before = await sp.call(
                "/counts", accounts=[a for n in nights for a in (n.host, *n.listeners)]
            )
            if k > 1:
                queue = ids[:16]
                await asyncio.gather(*(hour_script(sp, n, queue, k) for n in nights))
            else:
                queue = ids[short:][:12]
                await asyncio.gather(*(realtime_script(sp, n, queue) for n in nights))
            after = await sp.call(
                "/counts", accounts=[a for n in nights for a in (n.host, *n.listeners)]
            )
            for n in nights:
                n.calls = sum(after[a] - before[a] for a in (n.host, *n.listeners))
            stop.set()
            for engine in engines:
                await engine.aclose()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients:
                await client.aclose()
        await store.aclose()


def report(n: Night, *, per_hour: bool) -> list[str]:
    lines = []
    for kind in ("skip", "natural end", "seek", "pause", "resume"):
        values = n.figures.get(kind, [])
        if values:
            lines.append(f"  {kind:<12} n={len(values):>2}  p50 {pct(values, 50) * 1000:6.0f} ms"
                         f"  p95 {pct(values, 95) * 1000:6.0f} ms")  # fmt: skip
    never = sum(len(v) for k, v in n.figures.items() if k.endswith("(never)"))
    skew = f"p95 {pct(n.skews, 95):.0f} ms (n={len(n.skews)})" if n.skews else "-"
    lines.append(f"  skew after a sync {skew}; trials that never settled: {never}")
    if per_hour:
        lines.append(f"  Spotify calls in the hour: {n.calls}")
    return lines


def print_hour(hour: list[Night]) -> None:
    print(
        f"Reference game night (host + {LISTENERS} listeners; 15 tracks, 4 skips, 2 seeks, "
        f"2 pause/resume an hour); fake Spotify {LATENCY[0] * 1000:.0f} ± "
        f"{LATENCY[1] * 1000:.0f} ms per call; read lag 0.3 s and device start-up delay 0.15 s on"
    )
    print(f"Part 1: the hour compressed x{K} (10 s tracks), default budget per session")
    for n in hour:
        print(f"{n.name}:")
        print("\n".join(report(n, per_hour=True)))
    with_p = [n.calls for n in hour if n.delay is not None]
    print(f"calls per hour with presence: {max(with_p)}")
    print(f"calls per hour without presence: {hour[-1].calls}", flush=True)


async def main() -> None:
    started = time.monotonic()
    async with SpotifyProcess() as sp:
        hour = [make_night(f"presence {d} s", i, "p", d) for i, d in enumerate((0.3, 1.0, 2.0))]
        hour.append(make_night("no presence", 3, "p", None))
        await run_part(sp, hour, k=K, short=16, kinds={n.name: "budget" for n in hour})
        print_hour(hour)
        live = [make_night("no presence (paced)", 0, "r", None),
                make_night("old engine, 1 Hz", 1, "r", None),
                make_night("original 2 s worker", 2, "r", None)]  # fmt: skip
        await run_part(sp, live, k=1, short=16, kinds={"no presence (paced)": "budget",
                       "old engine, 1 Hz": "old", "original 2 s worker": "baseline"})  # fmt: skip
    print("Part 2: real time (long tracks): skips and pause/resume")
    for n in live:
        print(f"{n.name}:")
        print("\n".join(report(n, per_hour=False)))
    print(f"wall time {time.monotonic() - started:.0f} s")

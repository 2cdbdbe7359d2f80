"""Sync engine benchmarks: propagation, position skew, API calls, and 200 sessions at once.

Run:  python -m tests.bench.sync --night    (issue #10's reference night: tests/bench/night.py)
      python -m tests.bench.sync            (default, about 3 minutes)
      python -m tests.bench.sync --quick    (a smoke run, under a minute)
      python -m tests.bench.sync --full     (more repetitions and a longer steady phase)

Layout: the fake Spotify runs in a child process (tests/bench/spotify_process.py) with 80 ms ±
40 ms latency on every call (half before its handler runs, half after) and its per-app rate
limit off; this process runs the REAL stack: SyncEngine(s) with default settings ->
SpotifyClient -> spotipy in its thread pool -> HTTP, SQLite storage with leases. Times come
from the fake's player clocks (`time.time()` in both processes):
- propagation: the host's change (a skip at a random moment, or the track's natural end) to
  the moment the LAST listener's play command was applied by the fake;
- skew: |host position - listener position| read from the fake at one instant, right after
  every listener of the session is on the new track (so it is the landing error).
Light rows run 10 sessions x 5 listeners at once (to gather samples in parallel; the load is
light) with the default settings (engine defaults, SPOTIFY_WORKERS=32). The scale row runs
200 x 5 with `scale_workers` threads, and a ticker measuring the event loop's lag. The app's
own rate budget (SpotifyConfig.rate_limit, 150 calls / 30 s) is lifted in every row: at about
77 calls per playing session-minute it would hold ~3 sessions (see the calls row), and the
fake's per-app limit is off.

Targets: skip p95 <= 1.2 s; natural end p95 <= 0.5 s; skew p95 <= 150 ms; scale loop lag p99
< 50 ms and skip p95 <= 1.5 x the light figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from core.spotify import SpotifyClient, SpotifyConfig
from core.sync.engine import SyncEngine
from core.sync.reporter import PlaybackReport as SessionStatus
from core.sync.supervisor import GuildEngines as SyncEngines
from storage import Storage, TokenCipher, open_storage
from storage.records import ListenerState, Session, SpotifyLink
from tests.bench.baseline_loop import run_baseline
from tests.bench.spotify_process import SpotifyProcess

LATENCY = (0.08, 0.04)
_worlds = itertools.count()


@dataclass(frozen=True)
class Plan:
    light_sessions: int = 10
    listeners: int = 5
    skips: int = 8  # per light session
    ends: int = 3  # natural ends per light session
    steady_s: float = 30.0  # each of the playing / paused call-count windows
    scale_sessions: int = 200
    scale_window_s: float = 30.0
    scale_workers: int = 64


PLANS = {
    "quick": Plan(
        light_sessions=4, skips=3, ends=1, steady_s=8, scale_sessions=40, scale_window_s=8
    ),
    "default": Plan(),
    "full": Plan(skips=20, ends=6, steady_s=60, scale_window_s=60),
}


class NullEvents:
    async def status_changed(self, status: SessionStatus) -> None:
        pass

    async def notify_user(self, guild_id: int, user_id: int, message: str) -> None:
        pass

    async def session_ended(self, guild_id: int, reason: str) -> None:
        pass

    async def session_gone(self, guild_id: int) -> None:
        pass


@dataclass
class Group:
    """One session: guild id, the host's and the listeners' accounts and user ids."""

    guild_id: int
    host: str
    listeners: list[str]
    host_uid: int
    listener_uids: list[int]

    @property
    def accounts(self) -> list[str]:
        return [self.host, *self.listeners]


@dataclass
class Trial:
    group: Group
    track_id: str
    since: float  # when the host changed (fake's clock)
    done: asyncio.Future[tuple[float, list[int]]]


@dataclass
class World:
    spotify: SpotifyProcess
    store: Storage
    client: SpotifyClient
    groups: list[Group]
    catalog: list[tuple[str, int]]
    trials: list[Trial] = field(default_factory=list)

    def durations(self) -> dict[str, int]:
        return dict(self.catalog)


@asynccontextmanager
async def world(
    spotify: SpotifyProcess, sessions: int, listeners: int, *, workers: int = 32, rate: int = 150
) -> AsyncIterator[World]:
    """Accounts, links and sessions in a fresh SQLite file, and a client (default settings:
    SPOTIFY_WORKERS=32 threads; the app's own rate budget and threads as given)."""
    tag = f"w{next(_worlds)}"  # account names unique across worlds in the one fake process
    groups = []
    for g in range(sessions):
        base = 1000 * (g + 1)
        groups.append(
            Group(
                guild_id=g + 1,
                host=f"{tag}h{g}",
                listeners=[f"{tag}l{g}x{i}" for i in range(listeners)],
                host_uid=base,
                listener_uids=[base + i + 1 for i in range(listeners)],
            )
        )
    accounts = [a for group in groups for a in group.accounts]
    answer = await spotify.call("/setup", accounts=accounts, latency=LATENCY, rate_limit=None)
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_storage(f"sqlite:///{tmp}/bench.db", TokenCipher.generate())
        now = time.time()
        for group in groups:
            uids = [group.host_uid, *group.listener_uids]
            for uid, account in zip(uids, group.accounts, strict=True):
                access, refresh, expires_at, scopes = answer["tokens"][account]
                await store.put_link(
                    SpotifyLink(
                        uid, account, account, access, refresh, expires_at, tuple(scopes), now
                    )
                )
            states = {uid: ListenerState(uid, joined_at=now) for uid in group.listener_uids}
            await store.create_session(
                Session(group.guild_id, group.host_uid, now, host_active_at=now, listeners=states)
            )
        config = SpotifyConfig(
            "fake-client-id",
            "fake-client-secret",
            "http://127.0.0.1:9/cb",
            api_base=spotify.base,
            accounts_base=spotify.base,
            max_workers=workers,
            rate_limit=rate,
        )
        async with aiohttp.ClientSession() as http:
            client = SpotifyClient(config, store, http)
            catalog = [(t, d) for t, d in answer["catalog"]]
            try:
                yield World(spotify, store, client, groups, catalog)
            finally:
                await client.aclose()
                await store.aclose()


# --- observing the fake ------------------------------------------------------------------


async def observe(w: World, period: float, stop: asyncio.Event) -> None:
    """One batched read of every watched player per period; settles finished trials."""
    while not stop.is_set():
        open_trials = [t for t in w.trials if not t.done.done()]
        if open_trials:
            accounts = sorted({a for t in open_trials for a in t.group.accounts})
            state = await w.spotify.call("/state", accounts=accounts)
            for trial in open_trials:
                host = state[trial.group.host]
                others = [state[a] for a in trial.group.listeners]
                if all(o[0] == trial.track_id and o[2] for o in others):
                    landed = max(o[3] for o in others)
                    skews = [abs(host[1] - o[1]) for o in others]
                    trial.done.set_result((landed - trial.since, skews))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)


def watch(
    w: World, group: Group, track_id: str, since: float
) -> asyncio.Future[tuple[float, list[int]]]:
    done: asyncio.Future[tuple[float, list[int]]] = asyncio.get_running_loop().create_future()
    w.trials.append(Trial(group, track_id, since, done))
    return done


async def start_playing(w: World, rng: random.Random) -> None:
    """Every host plays a long queue from a random point; wait until listeners follow."""
    waits = []
    for group in w.groups:
        queue = [t for t, _ in w.catalog]
        rng.shuffle(queue)
        await w.spotify.call("/load", account=group.host, track_ids=queue,
                             position_ms=rng.randrange(10_000, 60_000))  # fmt: skip
        waits.append(watch(w, group, queue[0], time.time()))
    await asyncio.wait_for(asyncio.gather(*waits), 120)


# --- scenarios -----------------------------------------------------------------------------


@dataclass
class Figures:
    skip_s: list[float] = field(default_factory=list)
    skip_skew_ms: list[int] = field(default_factory=list)
    end_s: list[float] = field(default_factory=list)
    end_skew_ms: list[int] = field(default_factory=list)
    playing_calls: float = 0.0
    paused_calls: float = 0.0
    lag_ms: list[float] = field(default_factory=list)
    failed: int = 0


async def skip_trials(w: World, group: Group, count: int, rng: random.Random, f: Figures) -> None:
    for _ in range(count):
        await asyncio.sleep(rng.uniform(2.0, 3.5))  # a random phase against the poll cadence
        done = await w.spotify.call("/act", accounts=[group.host], action="next")
        since, track = done["at"][group.host], done["track"][group.host]
        try:
            took, skews = await asyncio.wait_for(watch(w, group, track, since), 20)
        except TimeoutError:
            f.failed += 1
            continue
        f.skip_s.append(took)
        f.skip_skew_ms.extend(skews)


async def end_trials(w: World, group: Group, count: int, rng: random.Random, f: Figures) -> None:
    durations = w.durations()
    ids = [t for t, _ in w.catalog]
    for _ in range(count):
        queue = rng.sample(ids, 3)
        lead = rng.uniform(3.0, 5.0)  # seconds before the end: time to sync to it first
        position = durations[queue[0]] - round(lead * 1000)
        loaded = await w.spotify.call(
            "/load", account=group.host, track_ids=queue, position_ms=position
        )
        ends_at = loaded["at"] + lead
        try:
            await asyncio.wait_for(watch(w, group, queue[0], loaded["at"]), 10)
            took, skews = await asyncio.wait_for(watch(w, group, queue[1], ends_at), 20)
        except TimeoutError:
            f.failed += 1
            continue
        f.end_s.append(took)
        f.end_skew_ms.extend(skews)
        await asyncio.sleep(rng.uniform(0.5, 1.5))


async def calls_per_minute(w: World, window_s: float) -> float:
    accounts = [a for g in w.groups for a in g.accounts]
    before = await w.spotify.call("/counts", accounts=accounts)
    await asyncio.sleep(window_s)
    after = await w.spotify.call("/counts", accounts=accounts)
    total = sum(after[a] - before[a] for a in accounts)
    return total / len(w.groups) / (window_s / 60)


@asynccontextmanager
async def engines_running(w: World) -> AsyncIterator[SyncEngines]:
    events = NullEvents()
    client = w.client

    def factory(guild_id: int) -> SyncEngine:
        return SyncEngine(guild_id, client=client, sessions=w.store, announcer=events,
                          leases=w.store, hold=lambda: client.limiter.blocked_for)  # fmt: skip

    engines = SyncEngines(factory)
    await engines.resume_all(w.store)
    try:
        yield engines
    finally:
        await engines.aclose()


@asynccontextmanager
async def baseline_running(w: World) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_baseline(w.client, g.host_uid, g.listener_uids, stop))
        for g in w.groups
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def with_observer(w: World, period: float, body: Callable[[], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    watcher = asyncio.create_task(observe(w, period, stop))
    try:
        await body()
    finally:
        stop.set()
        await watcher


async def light(spotify: SpotifyProcess, plan: Plan, *, baseline: bool) -> Figures:
    f = Figures()
    rng = random.Random(11 if baseline else 7)
    async with world(spotify, plan.light_sessions, plan.listeners, rate=10**9) as w:
        running = baseline_running(w) if baseline else engines_running(w)

        async def body() -> None:
            async with running:
                await start_playing(w, rng)
                await asyncio.gather(*(skip_trials(w, g, plan.skips, rng, f) for g in w.groups))
                await asyncio.gather(*(end_trials(w, g, plan.ends, rng, f) for g in w.groups))
                if baseline:
                    return
                f.playing_calls = await calls_per_minute(w, plan.steady_s)
                await spotify.call("/act", accounts=[g.host for g in w.groups], action="pause")
                await asyncio.sleep(5)  # the pause reaches everyone
                f.paused_calls = await calls_per_minute(w, plan.steady_s)

        await with_observer(w, 0.05, body)
    return f


async def ticker(samples: list[float], stop: asyncio.Event, tick: float = 0.005) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(tick)
        samples.append((time.perf_counter() - before - tick) * 1000)


async def scale(spotify: SpotifyProcess, plan: Plan) -> tuple[Figures, float, float]:
    f = Figures()
    rng = random.Random(3)
    async with world(
        spotify, plan.scale_sessions, plan.listeners, workers=plan.scale_workers, rate=10**9
    ) as w:
        rss_before = rss_mb()

        async def body() -> None:
            async with engines_running(w):
                await start_playing(w, rng)
                stop = asyncio.Event()
                lag = asyncio.create_task(ticker(f.lag_ms, stop))
                skips = max(1, round(plan.scale_window_s / 3.0) - 1)  # one per ~3 s per session
                await asyncio.gather(*(skip_trials(w, g, skips, rng, f) for g in w.groups))
                stop.set()
                await lag

        await with_observer(w, 0.1, body)
    return f, rss_before, peak_rss_mb()


# --- report ---------------------------------------------------------------------------------


def pct(values: list[float] | list[int], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return float(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))])


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def row(name: str, values: list[float] | list[int], unit: str, scale: float = 1.0) -> str:
    if not values:
        return f"| {name:<44} | {'-':>6} | {'-':>7} | {'-':>7} | {'-':>7} |"
    p50, p95, top = (pct(values, p) * scale for p in (50, 95, 100))
    return f"| {name:<44} | {len(values):>6} | {p50:>7.0f} | {p95:>7.0f} | {top:>7.0f} | {unit}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="plan", const="quick")
    mode.add_argument("--full", action="store_const", dest="plan", const="full")
    parser.add_argument("--no-scale", action="store_true", help="skip the 200-session row")
    parser.add_argument("--night", action="store_true", help="issue #10's reference night")
    args = parser.parse_args()
    if args.night:
        # Here, not at the top: night.py imports this module's LATENCY, NullEvents and pct.
        from tests.bench.night import main as night  # noqa: PLC0415

        return await night()
    plan = PLANS[args.plan or "default"]
    started = time.monotonic()
    print(f"plan {args.plan or 'default'}: {plan}", flush=True)
    async with SpotifyProcess() as spotify:
        engine = await light(spotify, plan, baseline=False)
        print("  engine rows done", flush=True)
        base = await light(spotify, plan, baseline=True)
        print("  baseline rows done", flush=True)
        scaled = await scale(spotify, plan) if not args.no_scale else None

    n, k = plan.light_sessions, plan.listeners
    print()
    print(f"Sync benchmark: fake Spotify in a child process, {LATENCY[0] * 1000:.0f} ms ± "
          f"{LATENCY[1] * 1000:.0f} ms per call; default engine settings")  # fmt: skip
    print(f"light: {n} sessions x {k} listeners at once, 32 spotipy threads; app rate budget "
          "lifted; times in ms, skew in ms")  # fmt: skip
    print(f"| {'measure':<44} | {'n':>6} | {'p50':>7} | {'p95':>7} | {'max':>7} |")
    print(f"|{'-' * 46}|{'-' * 8}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    print(
        row("engine: skip -> all listeners playing it", engine.skip_s, "target p95 <= 1200", 1000)
    )
    print(row("engine: natural end -> all on next track", engine.end_s, "target p95 <= 500", 1000))
    print(row("engine: skew after skip sync", engine.skip_skew_ms, "target p95 <= 150"))
    print(row("engine: skew after natural-end sync", engine.end_skew_ms, "target p95 <= 150"))
    print(row("baseline 2 s loop: skip -> all playing it", base.skip_s, "", 1000))
    print(row("baseline 2 s loop: natural end -> next", base.end_s, "", 1000))
    print(row("baseline 2 s loop: skew after skip", base.skip_skew_ms, ""))
    print(row("baseline 2 s loop: skew after natural end", base.end_skew_ms, ""))
    print()
    print(f"API calls per session-minute ({k} listeners, no changes, {plan.steady_s:.0f} s "
          f"windows): playing {engine.playing_calls:.1f}, paused {engine.paused_calls:.1f} "
          f"({engine.paused_calls / max(engine.playing_calls, 1e-9):.0%} of playing); "
          f"baseline loop: 30 host reads by construction")  # fmt: skip
    failed = engine.failed + base.failed
    if scaled is not None:
        f, before, peak = scaled
        failed += f.failed
        light95 = pct(engine.skip_s, 95)
        print()
        print(f"scale: {plan.scale_sessions} sessions x {k} listeners in this process, "
              f"{plan.scale_workers} spotipy threads")  # fmt: skip
        print(f"| {'measure':<44} | {'n':>6} | {'p50':>7} | {'p95':>7} | {'max':>7} |")
        print(f"|{'-' * 46}|{'-' * 8}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
        print(row("engine: skip -> all listeners playing it", f.skip_s,
                  f"target p95 <= {1.5 * light95 * 1000:.0f} (1.5 x light)", 1000))  # fmt: skip
        print(row("engine: skew after skip sync", f.skip_skew_ms, ""))
        lag99 = pct(f.lag_ms, 99)
        print(f"event-loop lag (5 ms ticker): p50 {pct(f.lag_ms, 50):.1f} ms, p99 {lag99:.1f} ms, "
              f"max {max(f.lag_ms, default=0):.1f} ms (target p99 < 50)")  # fmt: skip
        print(f"RSS: {before:.0f} MB before the engines started, peak {peak:.0f} MB")
    print()
    print(f"trials that never completed: {failed}; wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

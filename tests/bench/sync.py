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
- skew: |host position - listener position| read from the fake at one instant, 0.4 s after
  every listener of the session is on the new track (past the device start-up delay the
  engine aims ahead for: what is heard), split into its parts (`Landing`, `attribution`).
Light rows run 10 sessions x 5 listeners at once (to gather samples in parallel; the load is
light) with the default settings (engine defaults, SPOTIFY_WORKERS=32). The scale row runs
200 x 5 with `scale_workers` threads, and a ticker measuring the event loop's lag. The app's
own rate budget (SpotifyConfig.rate_limit, 150 calls / 30 s) is lifted in every row: at about
77 calls per playing session-minute it would hold ~3 sessions (see the calls row), and the
fake's per-app limit is off. The app has extended quota (EXTENDED_DAILY_BUDGET), and calls are
counted in memory unless --stored-counters (then in the SQLite file, as the bot does).

Quicker looks: --scale-only, --sessions N (the scale row's size), --no-scale.

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
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from core.spotify import SpotifyClient, SpotifyConfig
from core.spotify.quota import CallPriority
from core.sync.engine import SyncEngine
from core.sync.listener import PositionAt
from core.sync.reporter import PlaybackReport as SessionStatus
from core.sync.supervisor import GuildEngines as SyncEngines
from storage import Storage, TokenCipher, open_storage
from storage.records import ListenerState, Session, SpotifyLink
from tests.bench.baseline_loop import run_baseline
from tests.bench.spotify_process import SpotifyProcess

LATENCY = (0.08, 0.04)
# An app with extended quota: far more than any row spends (1,000 listeners for a minute is
# ~40,000 calls). A real deployment of 200 guilds runs on such an app, SPOTIFY_DAILY_BUDGET
# raised to match (README, *Spotify quota*); the default 1200 is a development-mode budget.
EXTENDED_DAILY_BUDGET = 10_000_000
_worlds = itertools.count()
# The engine's clock is monotonic; the fake's player clocks are wall time (same machine).
WALL_OFFSET = time.time() - time.monotonic()


class BenchClient(SpotifyClient):
    """The real client, remembering each listener's last play/seek position (a `PositionAt`:
    when it was computed and which one-way latency it allowed for), to attribute skew."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.positions: dict[int, PositionAt] = {}

    async def play(
        self,
        discord_user_id: int,
        track_uri: str | None,
        position_ms: int | Callable[[], int] | None = None,
        device_id: str | None = None,
        *,
        priority: CallPriority = CallPriority.COMMAND,
    ) -> None:
        if isinstance(position_ms, PositionAt):
            self.positions[discord_user_id] = position_ms
        await super().play(discord_user_id, track_uri, position_ms, device_id, priority=priority)

    async def seek(
        self,
        discord_user_id: int,
        position_ms: int | Callable[[], int],
        device_id: str | None = None,
        *,
        priority: CallPriority = CallPriority.COMMAND,
    ) -> None:
        if isinstance(position_ms, PositionAt):
            self.positions[discord_user_id] = position_ms
        await super().seek(discord_user_id, position_ms, device_id, priority=priority)


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
class Landing:
    """One listener's landed command, as heard: signed skew (listener - host, ms, read once
    audio started) and its parts: `late_ms`, how much later than the engine planned for the
    command was applied by the fake (its one-way trip minus the estimate the position
    allowed for: queueing in the fake, GIL/socket time after the position was computed,
    latency jitter); `host_ms`, the engine's error about where the host was (its reads'
    timing). skew = host_ms - late_ms + (lead - the fake's start-up delay, both 150 ms)."""

    skew_ms: int
    late_ms: float | None = None
    host_ms: float | None = None


@dataclass
class Trial:
    group: Group
    track_id: str
    since: float  # when the host changed (fake's clock)
    done: asyncio.Future[tuple[float, list[Landing]]]
    took: float | None = None  # set once every listener is on the track
    heard_at: float = 0.0  # when to read the skew (past the start-up delay)


@dataclass
class World:
    spotify: SpotifyProcess
    store: Storage
    client: BenchClient
    groups: list[Group]
    catalog: list[tuple[str, int]]
    trials: list[Trial] = field(default_factory=list)
    uids: dict[str, int] = field(default_factory=dict)  # account -> Discord user id

    def durations(self) -> dict[str, int]:
        return dict(self.catalog)

    def landing(self, account: str, seen: list[Any], host: list[Any]) -> Landing:
        """`seen`/`host`: [track, position ms, playing, changed_at] read at one instant."""
        skew = int(seen[1]) - int(host[1])
        client = self.client
        sent = (
            client.positions.get(self.uids.get(account, -1))
            if isinstance(client, BenchClient)
            else None
        )
        if sent is None or sent.sent is None:
            return Landing(skew)
        sent_wall = sent.sent[0] + WALL_OFFSET
        late_ms = (float(seen[3]) - sent_wall - sent.one_way_s) * 1000
        return Landing(skew, late_ms, skew + late_ms)


@asynccontextmanager
async def world(
    spotify: SpotifyProcess,
    sessions: int,
    listeners: int,
    *,
    workers: int = 32,
    rate: int = 150,
    stored_counters: bool = False,
) -> AsyncIterator[World]:
    """Accounts, links and sessions in a fresh SQLite file, and a client (default settings:
    SPOTIFY_WORKERS=32 threads; the app's own rate budget and threads as given).

    The app is one with extended quota (EXTENDED_DAILY_BUDGET): a development-mode budget
    (SPOTIFY_DAILY_BUDGET=1200 a day) is spent by 10 playing sessions in two minutes, after
    which every command is refused by our own governor. `stored_counters`: count calls in the
    SQLite file as the bot does (bot/services.py), not in this process's memory."""
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
            daily_budget=EXTENDED_DAILY_BUDGET,
        )
        async with aiohttp.ClientSession() as http:
            client = BenchClient(config, store, http, counters=store if stored_counters else None)
            catalog = [(t, d) for t, d in answer["catalog"]]
            by_account = {
                account: uid
                for g in groups
                for account, uid in zip(g.accounts, [g.host_uid, *g.listener_uids], strict=True)
            }
            try:
                yield World(spotify, store, client, groups, catalog, uids=by_account)
            finally:
                await client.aclose()
                await store.aclose()


# --- observing the fake ------------------------------------------------------------------


# Skew is read this long after the last listener landed: the fake's device start-up delay
# (0.15 s, tests/fakes/spotify_lag.py) holds a just-commanded position still, and the engine
# aims 150 ms ahead for it (SyncConfig.start_lead_ms). Read at the landing, every listener
# would show up to 150 ms ahead: the lead, not what anyone hears (tests/bench/night.py too).
HEARD_AFTER_S = 0.4


async def observe(w: World, period: float, stop: asyncio.Event) -> None:
    """One batched read of every watched player per period; settles finished trials."""
    while not stop.is_set():
        open_trials = [t for t in w.trials if not t.done.done()]
        if open_trials:
            accounts = sorted({a for t in open_trials for a in t.group.accounts})
            state = await w.spotify.call("/state", accounts=accounts)
            now = time.time()
            for trial in open_trials:
                host = state[trial.group.host]
                others = {a: state[a] for a in trial.group.listeners}
                if trial.took is None:
                    if all(o[0] == trial.track_id and o[2] for o in others.values()):
                        landed = max(o[3] for o in others.values())
                        trial.took = landed - trial.since
                        trial.heard_at = max(now, landed) + HEARD_AFTER_S
                elif now >= trial.heard_at:
                    heard = [
                        w.landing(a, o, host)
                        for a, o in others.items()
                        if o[0] == host[0] == trial.track_id and o[2] and host[2]
                    ]
                    trial.done.set_result((trial.took, heard))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)


def watch(
    w: World, group: Group, track_id: str, since: float
) -> asyncio.Future[tuple[float, list[Landing]]]:
    done: asyncio.Future[tuple[float, list[Landing]]] = asyncio.get_running_loop().create_future()
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
    landings: list[Landing] = field(default_factory=list)  # every skew sample, with its parts
    spent: int = 0  # Spotify calls the quota governor counted

    def add_skews(self, into: list[int], landings: list[Landing]) -> None:
        into.extend(abs(landing.skew_ms) for landing in landings)
        self.landings.extend(landings)


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
        f.add_skews(f.skip_skew_ms, skews)


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
        f.add_skews(f.end_skew_ms, skews)
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
        f.spent = w.client.quota.status().spent
    return f


async def ticker(samples: list[float], stop: asyncio.Event, tick: float = 0.005) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(tick)
        samples.append((time.perf_counter() - before - tick) * 1000)


async def scale(
    spotify: SpotifyProcess, plan: Plan, *, stored_counters: bool = False
) -> tuple[Figures, float, float]:
    f = Figures()
    rng = random.Random(3)
    async with world(
        spotify,
        plan.scale_sessions,
        plan.listeners,
        workers=plan.scale_workers,
        rate=10**9,
        stored_counters=stored_counters,
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
        f.spent = w.client.quota.status().spent
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


def signed_pct(values: list[float], p: float) -> float:
    return pct(values, p) if values else float("nan")


def attribution(f: Figures) -> str:
    """Where the skew comes from (see `Landing`): listeners behind the host come from commands
    applied later than planned, or from the engine believing the host was further back."""
    skews = [float(x.skew_ms) for x in f.landings]
    late = [x.late_ms for x in f.landings if x.late_ms is not None]
    host = [x.host_ms for x in f.landings if x.host_ms is not None]
    return (
        f"  skew signed (listener - host): p5 {signed_pct(skews, 5):.0f}, p50 "
        f"{signed_pct(skews, 50):.0f}, p95 {signed_pct(skews, 95):.0f} ms; of it, the command "
        f"applied later than planned: p50 {signed_pct(late, 50):.0f}, p95 "
        f"{signed_pct(late, 95):.0f} ms; the engine's host position error: p5 "
        f"{signed_pct(host, 5):.0f}, p50 {signed_pct(host, 50):.0f}, p95 "
        f"{signed_pct(host, 95):.0f} ms ({len(late)} of {len(skews)} attributed)"
    )


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
    parser.add_argument("--sessions", type=int, help="sessions in the scale row (plan's default)")
    parser.add_argument("--scale-only", action="store_true", help="only the scale row")
    parser.add_argument(
        "--stored-counters",
        action="store_true",
        help="count Spotify calls in the SQLite file, as the bot does (default: in memory)",
    )
    args = parser.parse_args()
    if args.night:
        # Here, not at the top: night.py imports this module's LATENCY, NullEvents and pct.
        from tests.bench.night import main as night  # noqa: PLC0415

        return await night()
    plan = PLANS[args.plan or "default"]
    if args.sessions is not None:
        plan = replace(plan, scale_sessions=args.sessions)
    started = time.monotonic()
    print(f"plan {args.plan or 'default'}: {plan}", flush=True)
    async with SpotifyProcess() as spotify:
        engine = base = Figures()
        if not args.scale_only:
            engine = await light(spotify, plan, baseline=False)
            print("  engine rows done", flush=True)
            base = await light(spotify, plan, baseline=True)
            print("  baseline rows done", flush=True)
        scaled = None
        if not args.no_scale:
            scaled = await scale(spotify, plan, stored_counters=args.stored_counters)

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
    print(attribution(engine))
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
    failures = f"engine {engine.failed}, baseline {base.failed}"
    if scaled is not None:
        f, before, peak = scaled
        failed += f.failed
        failures += f", scale {f.failed}"
        # Without the light rows (--scale-only) there is nothing to compare with: say so
        # rather than print the scale row's own p95 as its limit.
        skip_target = (
            f"target p95 <= {1.5 * pct(engine.skip_s, 95) * 1000:.0f} (1.5 x light)"
            if engine.skip_s
            else "no target without the light rows"
        )
        print()
        print(f"scale: {plan.scale_sessions} sessions x {k} listeners in this process, "
              f"{plan.scale_workers} spotipy threads")  # fmt: skip
        print(f"| {'measure':<44} | {'n':>6} | {'p50':>7} | {'p95':>7} | {'max':>7} |")
        print(f"|{'-' * 46}|{'-' * 8}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
        print(row("engine: skip -> all listeners playing it", f.skip_s, skip_target, 1000))
        print(row("engine: skew after skip sync", f.skip_skew_ms, "target p95 <= 150"))
        print(attribution(f))
        lag99 = pct(f.lag_ms, 99)
        print(f"event-loop lag (5 ms ticker): p50 {pct(f.lag_ms, 50):.1f} ms, p99 {lag99:.1f} ms, "
              f"max {max(f.lag_ms, default=0):.1f} ms (target p99 < 50)")  # fmt: skip
        print(f"RSS: {before:.0f} MB before the engines started, peak {peak:.0f} MB")
        print(
            f"Spotify calls counted by the quota governor: {f.spent:,} (light engine row: "
            f"{engine.spent:,}; a development-mode SPOTIFY_DAILY_BUDGET is 1,200 a day)"
        )
    print()
    print(
        f"trials that never completed: {failed} ({failures}); "
        f"wall time {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

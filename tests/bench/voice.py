"""Voice benchmarks: how fast and how exactly the voice channel follows the host, and capacity.

Run:  python -m tests.bench.voice            (3.5 to 6 minutes: fewer when steps fail early)
      python -m tests.bench.voice --quick    (a smoke run, under a minute)
      --max-sessions N / --step-s S          (a shorter ladder, longer or shorter steps)

The REAL bot (composition root) runs against the fake Discord with its fake voice server, the
fake Spotify and the fake YouTube, all in this process. The host's Spotify presence is
dispatched by the fake Discord; the fake voice server decrypts and decodes what the bot plays
and reads the fake YouTube's code back (track tone + time code) per 200 ms window.
- follow time: a host skip, seek or resume (presence dispatched) to the middle of the first of
  three consecutive windows that are the host's track within 250 ms of the host's position;
- position error: |heard position - host position at that arrival| over the 2 s after that;
- steady playback and capacity: N guilds each with a voice session playing at once, N stepped
  up (1 for 60 s, then 2, 4, 6, 8, 12, 16 for 30 s each; stopping after two failing steps).
  Per step: packets received of those due (one per 20 ms per session),
  inter-arrival gaps over 40 ms per session-minute, the worst gap, and CPU per session (this
  process without the fake's UDP thread, plus every ffmpeg). Arrival times are the kernel's
  receive timestamps and the fake does not decode in these steps, so the fake's own work
  invents no gap. A step passes when every session got >= 99 % of its packets and no gap
  over 40 ms; the capacity is the largest N whose step and every smaller step passed.
  Steady playback is the N=1 step.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord

from tests.bot.conftest import World
from tests.bot.test_gamenight import say
from tests.conftest import free_port
from tests.fakes.discord import FakeDiscord, Guild, Member
from tests.fakes.spotify import FakeSpotify
from tests.fakes.wiring import settings_for_fakes
from tests.fakes.youtube import FakeYouTube
from tests.linkpage import follow_and_confirm
from tests.voice.conftest import SONGS, HostPosition, VoiceWorld

BENCH_AUDIO_S = 100  # longer than a step plus its settle: the audio must not run out
LADDER = [1, 2, 4, 6, 8, 12, 16]  # sessions at once, step by step
STEADY_S = 60.0  # the N=1 step: steady playback, gaps per minute
STEP_S = 30.0  # every further step: 1,500 packets due per session
SETTLE_S = 2.0  # after (re)starting every session: ffmpeg and relay start-up are not measured


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(stat_path: str) -> float:
    """user + system CPU seconds of a process or thread, from its /proc stat line."""
    try:
        with open(stat_path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # it ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _children() -> list[int]:
    me = str(os.getpid())
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[1] == me:
                        kids.append(int(entry))
            except (OSError, IndexError):
                continue
    return kids


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuMark:
    own: float  # this process without the fake voice server's UDP thread
    kids: dict[int, float]  # live children (ffmpeg) by pid
    reaped: float  # children that ended
    machine: tuple[float, float]

    @classmethod
    def now(cls, fake_thread: int | None) -> CpuMark:
        own = _proc_cpu_s("/proc/self/stat")
        if fake_thread is not None:
            own -= _proc_cpu_s(f"/proc/self/task/{fake_thread}/stat")
        kids = {pid: _proc_cpu_s(f"/proc/{pid}/stat") for pid in _children()}
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(own, kids, usage.ru_utime + usage.ru_stime, _machine_busy())

    def since(self, start: CpuMark) -> tuple[float, float]:
        """(CPU seconds of the bot and its ffmpegs, fraction of the machine busy) since start."""
        kids = sum(cpu - start.kids.get(pid, 0.0) for pid, cpu in self.kids.items())
        bot = self.own - start.own + kids + self.reaped - start.reaped
        busy = (self.machine[0] - start.machine[0]) / max(1, self.machine[1] - start.machine[1])
        return bot, busy


async def host_in_voice(vw: VoiceWorld, guild: Guild, name: str) -> Member:
    fake = vw.discord
    vw.world.spotify.add_account(f"{name}-sp", name)
    member = fake.add_member(name, guild=guild)
    reply = await (await fake.slash("link", member, guild=guild)).reply()
    (url,) = reply.link_urls()
    redirect = await vw.world.spotify.consent(url, f"{name}-sp")
    status, _ = await follow_and_confirm(vw.world.callback_url, redirect)  # press Link
    assert status == 200, f"linking {name} failed: {status}"
    return member


async def follow_rounds(vw: VoiceWorld, host: Member, rounds: int) -> dict[str, Any]:
    fake = vw.discord
    times: dict[str, list[float]] = {"skip": [], "seek": [], "resume": []}
    errors: list[float] = []
    song = 0
    for i in range(rounds):
        for kind in ("skip", "seek", "resume"):
            if kind == "skip":
                song = 1 - song
                position = 3_000 + (i * 1_700) % 10_000
            elif kind == "seek":
                position = 15_000 + (i * 2_300) % 15_000
            else:
                await vw.play(host, None)
                await asyncio.sleep(1.0)
                position = 12_000 + (i * 900) % 10_000
            mark = time.monotonic()
            await vw.play(host, SONGS[song], position_ms=position)
            heard = await vw.in_sync(since=mark, windows=3)
            first = next(
                j for j in range(len(heard) - 2) if all(vw.in_step(h) for h in heard[j : j + 3])
            )
            times[kind].append(heard[first].at - mark)
            await asyncio.sleep(2.5)
            settled = heard[first].at
            for h in fake.voice.heard(since=settled):
                if h.at < settled + 2.0 and h.position_s is not None:
                    errors.append(abs(h.position_s - vw.host_state.at_time(h.at)) * 1000)
    return {"times": times, "errors": errors}


@dataclass
class Step:
    sessions: int
    seconds: float
    received: float  # the worst session's share of the packets due
    with_gaps: int  # sessions with a gap over 40 ms
    gaps_per_session_min: float
    worst_gap_ms: float
    cpu_pct_per_session: float  # of one core
    others_busy: float  # of all cores, by anything but the bot and its ffmpegs

    @property
    def passed(self) -> bool:
        return self.received >= 0.99 and self.with_gaps == 0

    def line(self) -> str:
        return (
            f"  {self.sessions:2d} session(s), {self.seconds:.0f} s: packets {self.received:6.1%}"
            f" of due (worst session), gaps > 40 ms: {self.gaps_per_session_min:5.2f} per"
            f" session-minute in {self.with_gaps} session(s), worst {self.worst_gap_ms:4.0f} ms,"
            f" CPU {self.cpu_pct_per_session:4.1f} % of a core per session; the rest of the"
            f" machine {self.others_busy:4.0%} busy -> {'pass' if self.passed else 'FAIL'}"
        )


async def capacity_step(vw: BenchVoice, hosts: list[tuple[Guild, Member]], seconds: float) -> Step:
    """Every host's session plays from the start of the audio; measured after a settle."""
    fake = vw.discord
    for guild, host in hosts:
        await vw.play_in(host, guild, SONGS[0], 1_000)
    await asyncio.sleep(SETTLE_S)
    reader = fake.voice._reader
    thread = reader.native_id if reader is not None else None
    start, cpu0 = time.monotonic(), CpuMark.now(thread)
    await asyncio.sleep(seconds)
    end, cpu1 = time.monotonic(), CpuMark.now(thread)
    await asyncio.sleep(0.2)  # packets sent before `end` have arrived
    bot_cpu, busy = cpu1.since(cpu0)
    due = seconds / 0.020
    received, gaps, with_gaps, worst = [], 0, 0, 0.0
    for conn in fake.voice.live_connections():
        arrivals = [p for p in fake.voice.packets(start, conn.ssrc) if p.at < end]
        audio = [p.at for p in arrivals if not p.silence]
        mine = [b - a for a, b in itertools.pairwise(audio) if b - a > 0.040]
        received.append(len(arrivals) / due)
        gaps += len(mine)
        with_gaps += bool(mine)
        worst = max([worst, *mine])
    missing = len(hosts) - len(received)  # a session without a connection received nothing
    received += [0.0] * missing
    return Step(
        len(hosts),
        seconds,
        min(received),
        with_gaps + missing,
        gaps * 60 / seconds / len(hosts),
        worst * 1000,
        bot_cpu / seconds * 100 / len(hosts),
        max(0.0, busy - bot_cpu / seconds / (os.cpu_count() or 1)),
    )


class BenchVoice(VoiceWorld):
    async def play_in(self, member: Member, guild: Guild, song: Any, position_ms: int) -> None:
        default = self.discord.default_guild
        self.discord.default_guild = guild  # play() dispatches for the default guild
        try:
            await self.play(member, song, position_ms)
        finally:
            self.discord.default_guild = default


async def main(quick: bool, max_sessions: int, step_s: float) -> None:
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="voice-bench-"))
    fake_discord = await FakeDiscord().start()
    fake_spotify = await FakeSpotify().start()
    # Up to 16 hosts in 16 guilds, each linked: an app with extended quota, not a
    # development-mode one (5 users; README, *Spotify quota*). Voice itself spends no Spotify call
    # per listener; the hosts' links only let the engine read them.
    fake_spotify.devmode.enforce_allowlist = False
    youtube = FakeYouTube(audio_seconds=BENCH_AUDIO_S)
    await youtube.start()
    for song in SONGS:
        youtube.add_video(song.video_id, song.title, song.artists, song.duration_s)
    settings = settings_for_fakes(
        fake_discord, fake_spotify, port=free_port(), db_path=tmp / "gamenight.db"
    )
    world = World(fake_discord, fake_spotify, settings, tmp / "gamenight.db")
    vw = BenchVoice(world, youtube, HostPosition(None))
    ladder = [n for n in ([1, 2] if quick else LADDER) if n <= max_sessions]
    extra = []
    for n in range(max(ladder) - 1):
        guild = fake_discord.add_guild(f"Guild {n}", owner=fake_discord.owner)
        extra.append((guild, fake_discord.voice.add_channel(f"Room {n}", guild=guild)))
    room = fake_discord.voice.add_channel("Game Room")
    steps: list[Step] = []
    try:
        async with vw.run() as app:
            assert app.bot is not None
            # Commands are registered for the development guild only: copy them to the others.
            for guild, _ in extra:
                app.bot.tree.copy_global_to(guild=discord.Object(guild.id))
                commands = fake_discord.guild_commands[fake_discord.default_guild.id]
                fake_discord.guild_commands[guild.id] = commands
            host = await host_in_voice(vw, fake_discord.default_guild, "hana")
            await fake_discord.voice.move(host, room)
            await say(world, "gamenight start", host)
            await vw.play(host, SONGS[0], position_ms=2_000)
            await say(world, "gamenight voice join", host)
            await vw.in_sync(since=0.0)
            follow = await follow_rounds(vw, host, 2 if quick else 6)
            fake_discord.voice.decode = False  # from here on only arrivals count
            hosts = [(fake_discord.default_guild, host)]
            failed_in_a_row = 0
            print("capacity steps:")
            for n in ladder:
                while len(hosts) < n:
                    guild, channel = extra[len(hosts) - 1]
                    member = await host_in_voice(vw, guild, f"host{len(hosts)}")
                    await fake_discord.voice.move(member, channel)
                    await (await fake_discord.slash("gamenight start", member, guild=guild)).reply()
                    ix = await fake_discord.slash("gamenight voice join", member, guild=guild)
                    await ix.reply(within=15)
                    hosts.append((guild, member))
                seconds = 10 if quick else STEADY_S if n == 1 else step_s
                steps.append(await capacity_step(vw, hosts[:n], seconds))
                print(steps[-1].line(), flush=True)
                failed_in_a_row = 0 if steps[-1].passed else failed_in_a_row + 1
                if failed_in_a_row == 2:
                    break
    finally:
        await youtube.aclose()
        await fake_spotify.stop()
        await fake_discord.stop()
    times, errors = follow["times"], follow["errors"]
    print("voice follow time (host change -> channel hears it), ms:")
    for kind, values in times.items():
        ms = [v * 1000 for v in values]
        print(f"  {kind:7s} n={len(ms):3d}  p50 {pct(ms, 0.5):6.0f}  p95 {pct(ms, 0.95):6.0f}")
    print(f"voice position error p50: {statistics.median(errors):.0f} ms (n={len(errors)})")
    print(f"voice position error p95: {pct(errors, 0.95):.0f} ms")
    one = steps[0]
    print(f"steady playback (1 session, {one.seconds:.0f} s): gaps > 40 ms per minute: "
          f"{one.gaps_per_session_min:.1f}")  # fmt: skip
    print(f"CPU per voice session (bot + relay + ffmpeg, 1 session): "
          f"{one.cpu_pct_per_session:.1f} % of one core")  # fmt: skip
    carried = 0
    for step in steps:
        if not step.passed:
            break
        carried = step.sessions
    busiest = [s for s in steps if s.sessions <= max(carried, 1)][-1]
    top = " (the largest step tried: at least this many)" if carried == ladder[-1] else ""
    print(f"simultaneous voice sessions with no gap > 40 ms: {carried}{top} (CPU per session "
          f"there: {busiest.cpu_pct_per_session:.1f} % of one core)")  # fmt: skip
    uptime = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout  # noqa: ASYNC221
    others = max(step.others_busy for step in steps)
    if others > 0.25:
        print(f"NOTE: other processes kept up to {others:.0%} of this machine busy during the "
              "steps: gaps then come from them too; re-run on a quiet machine")  # fmt: skip
    print(f"machine load: {uptime.strip()}")
    print(f"bench run time: {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-sessions", type=int, default=max(LADDER))
    parser.add_argument("--step-s", type=float, default=STEP_S, help="seconds per step, N > 1")
    args = parser.parse_args()
    asyncio.run(main(args.quick, args.max_sessions, args.step_s))

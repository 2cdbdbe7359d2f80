"""Voice benchmarks: how fast and how exactly the voice channel follows the host, and capacity.

Run:  python -m tests.bench.voice            (about 4 minutes)
      python -m tests.bench.voice --quick    (a smoke run)

The REAL bot (composition root) runs against the fake Discord with its fake voice server, the
fake Spotify and the fake YouTube, all in this process. The host's Spotify presence is
dispatched by the fake Discord; the fake voice server decrypts and decodes what the bot plays
and reads the fake YouTube's code back (track tone + time code) per 200 ms window.
- follow time: a host skip, seek or resume (presence dispatched) to the middle of the first of
  three consecutive windows that are the host's track within 250 ms of the host's position;
- position error: |heard position - host position at that arrival| over the 2 s after that;
- steady playback: inter-arrival gaps over 40 ms per minute, CPU (this process + ffmpeg) per
  voice session;
- capacity: N guilds each with a voice session playing at once for a while; the largest N
  with no gap over 40 ms in any channel.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import tempfile
import time
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
from tests.voice.conftest import SONGS, HostPosition, VoiceWorld

BENCH_AUDIO_S = 100  # longer than the 60 s steady phase: the audio must not run out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


async def host_in_voice(vw: VoiceWorld, guild: Guild, name: str) -> Member:
    fake = vw.discord
    vw.world.spotify.add_account(f"{name}-sp", name)
    member = fake.add_member(name, guild=guild)
    reply = await (await fake.slash("link", member, guild=guild)).reply()
    (url,) = reply.link_urls()
    redirect = await vw.world.spotify.consent(url, f"{name}-sp")
    await vw.world.browse(redirect)
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


async def steady(vw: VoiceWorld, host: Member, seconds: float) -> dict[str, float]:
    fake = vw.discord
    await vw.play(host, SONGS[0], position_ms=1_000)
    await asyncio.sleep(1.0)
    start, cpu0 = time.monotonic(), cpu_s()
    await asyncio.sleep(seconds)
    cpu1 = cpu_s()
    gaps = fake.voice.gaps(since=start)
    return {"gaps_per_min": len(gaps) * 60 / seconds, "cpu_pct": (cpu1 - cpu0) / seconds * 100}


async def capacity(vw: VoiceWorld, guilds: list[tuple[Guild, Member]], seconds: float) -> int:
    fake = vw.discord
    for guild, host in guilds:
        await vw.play_in(host, guild, SONGS[0], 1_000)
    await asyncio.sleep(1.5)
    start = time.monotonic()
    await asyncio.sleep(seconds)
    worst = 0
    for conn in fake.voice.live_connections():
        worst = max(worst, len(fake.voice.gaps(since=start, ssrc=conn.ssrc)))
    return worst


class BenchVoice(VoiceWorld):
    async def play_in(self, member: Member, guild: Guild, song: Any, position_ms: int) -> None:
        default = self.discord.default_guild
        self.discord.default_guild = guild  # play() dispatches for the default guild
        try:
            await self.play(member, song, position_ms)
        finally:
            self.discord.default_guild = default


async def main(quick: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="voice-bench-"))
    fake_discord = await FakeDiscord().start()
    fake_spotify = await FakeSpotify().start()
    youtube = FakeYouTube(audio_seconds=BENCH_AUDIO_S)
    await youtube.start()
    for song in SONGS:
        youtube.add_video(song.video_id, song.title, song.artists, song.duration_s)
    settings = settings_for_fakes(
        fake_discord, fake_spotify, port=free_port(), db_path=tmp / "gamenight.db"
    )
    world = World(fake_discord, fake_spotify, settings, tmp / "gamenight.db")
    vw = BenchVoice(world, youtube, HostPosition(None))
    max_sessions = [1, 2, 4] if quick else [1, 2, 4, 6, 8]
    extra = []
    for n in range(max(max_sessions) - 1):
        guild = fake_discord.add_guild(f"Guild {n}", owner=fake_discord.owner)
        extra.append((guild, fake_discord.voice.add_channel(f"Room {n}", guild=guild)))
    room = fake_discord.voice.add_channel("Game Room")
    try:
        async with vw.run() as app:
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
            follow = await follow_rounds(vw, host, 2 if quick else 8)
            steady_figures = await steady(vw, host, 15 if quick else 60)
            hosts = [(fake_discord.default_guild, host)]
            for i, (guild, channel) in enumerate(extra):
                member = await host_in_voice(vw, guild, f"host{i}")
                await fake_discord.voice.move(member, channel)
                await (await fake_discord.slash("gamenight start", member, guild=guild)).reply()
                hosts.append((guild, member))
            carried = 0
            for n in max_sessions:
                for guild, member in hosts[1:n]:
                    if fake_discord.voice.bot_channel(guild) is None:
                        ix = await fake_discord.slash("gamenight voice join", member, guild=guild)
                        await ix.reply(within=15)
                worst = await capacity(vw, hosts[:n], 10 if quick else 30)
                print(f"  {n} voice session(s) at once: most gaps > 40 ms in one channel: {worst}")
                if worst == 0:
                    carried = n
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
    print(f"steady playback: gaps > 40 ms per minute: {steady_figures['gaps_per_min']:.1f}")
    print(
        f"CPU per voice session (bot + ffmpeg + the fake's decoding): "
        f"{steady_figures['cpu_pct']:.1f} % of one core"
    )
    print(f"simultaneous voice sessions with no gap > 40 ms: {carried}")
    uptime = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout  # noqa: ASYNC221
    print(f"machine load: {uptime.strip()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.quick))

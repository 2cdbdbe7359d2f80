"""Several real `python -m bot` processes on one Redis, against the fakes (tests and bench).

A `Cluster` starts the sharded fake Discord and a fake Spotify in this process, and bot
processes as an operator would run them (environment variables only, `python -m bot` or
`python -m bot web`), each with its own port on the fake Spotify so that every call the fake
records says which process sent it (`RequestRecord.port` -> `Cluster.sender`). The processes
run under tests/netguard.py (nothing may leave loopback); their output goes to log files.

    async with Cluster.open(redis_url, tmp_path) as c:
        s0, s1 = await c.start("shard0", shard=0), await c.start("shard1", shard=1)
        web = await c.start("web")              # no gateway: the HTTP API only
        await c.ready(s0, s1, web)
        g0, g1 = c.guild[0], c.guild[1]         # one guild on each shard
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet

import storage
from storage.base import Storage
from storage.records import SpotifyLink
from tests.fakes.discord import Guild, Member
from tests.fakes.discord_shards import ShardedDiscord
from tests.fakes.spotify import FakeSpotify, RequestRecord
from tests.redis_proc import free_port

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 2
# Player commands: what a sync loop sends to a listener (reads are not commands).
COMMANDS = (
    ("PUT", "/v1/me/player/play"),
    ("PUT", "/v1/me/player/pause"),
    ("PUT", "/v1/me/player/seek"),
    ("PUT", "/v1/me/player"),
    ("POST", "/v1/me/player/next"),
)
# `python -m bot` with the test session's socket guard installed first; a blocked connect is
# printed on exit (a process killed with -9 prints nothing, but its attempts raised already).
GUARDED_MAIN = (
    "import atexit, runpy, sys; from tests import netguard; netguard.install(); "
    "atexit.register(lambda: netguard.BLOCKED and print('NETGUARD BLOCKED', netguard.BLOCKED, "
    "file=sys.stderr)); sys.argv[0] = 'bot'; runpy.run_module('bot', run_name='__main__')"
)


@dataclass
class Proc:
    """One bot process: its role, HTTP port, own fake Spotify port, and log file."""

    name: str
    shard: int | None  # None: web-only
    http_port: int
    spotify_port: int
    log: Path
    process: asyncio.subprocess.Process
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Cluster:
    discord: ShardedDiscord
    spotify: FakeSpotify
    redis_url: str
    key: str
    store: Storage  # this process's own connection to the shared storage, for set-up
    folder: Path
    env: dict[str, str]  # settings every process gets (on top of its own)
    guild: dict[int, Guild] = field(default_factory=dict)  # shard id -> a guild on it
    procs: list[Proc] = field(default_factory=list)

    @classmethod
    @asynccontextmanager
    async def open(cls, redis_url: str, folder: Path, **settings: str) -> AsyncIterator[Cluster]:
        """Fakes, a namespace on the Redis at `redis_url`, and a guild on every shard."""
        discord = await ShardedDiscord(shard_count=SHARDS).start()
        spotify = await FakeSpotify().start()
        key = Fernet.generate_key().decode()
        url = f"{redis_url}?prefix=scale-{os.urandom(6).hex()}"
        store = await storage.open_storage(url, storage.TokenCipher.from_keys(key))
        env = {
            "DISCORD_TOKEN": discord.token,
            "DISCORD_API_BASE": discord.api_base,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            "SPOTIFY_CLIENT_ID": spotify.app.client_id,
            "SPOTIFY_CLIENT_SECRET": spotify.app.client_secret,
            "TOKEN_ENCRYPTION_KEY": key,
            "STORAGE_URL": url,
            "DISCORD_SHARD_COUNT": str(SHARDS),
            # A closed local port: nothing may search the real YouTube.
            "YOUTUBE_BASE_URL": f"http://127.0.0.1:{free_port()}",
            "LOG_LEVEL": "INFO",
            **settings,
        }
        cluster = cls(discord, spotify, url, key, store, folder, env)
        for shard in range(SHARDS):
            cluster.guild[shard] = discord.add_guild_on_shard(
                shard, f"Shard {shard} HQ", owner=discord.owner
            )
        try:
            yield cluster
        finally:
            await cluster.aclose()

    async def aclose(self) -> None:
        for proc in self.procs:
            if proc.process.returncode is None:
                proc.process.kill()
                await proc.process.wait()
        await self.store.aclose()
        await self.discord.stop()
        await self.spotify.stop()

    # --- processes ------------------------------------------------------------------------

    async def start(self, name: str, *, shard: int | None = None) -> Proc:
        """Launch `python -m bot` on `shard`, or `python -m bot web` with shard None."""
        spotify_base = await self.spotify.another_base()
        http_port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DISCORD_", "SPOTIFY_", "TOKEN_", "STORAGE_", "HTTP_", "SYNC_"))
        }
        env.update(self.env)
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "HTTP_PORT": str(http_port),
                "SPOTIFY_API_BASE": spotify_base,
                "SPOTIFY_ACCOUNTS_BASE": spotify_base,
            }
        )
        if shard is not None:
            env["DISCORD_SHARD_IDS"] = str(shard)
        else:  # the web role needs no Discord settings at all
            env = {k: v for k, v in env.items() if not k.startswith("DISCORD_")}
        log = self.folder / f"{name}.log"
        args = ["-c", GUARDED_MAIN] + ([] if shard is not None else ["web"])
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                cwd=self.folder,  # no .env there: the environment is the whole configuration
                env=env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        proc = Proc(name, shard, http_port, int(spotify_base.rsplit(":", 1)[1]), log, process)
        self.procs.append(proc)
        return proc

    async def ready(self, *procs: Proc, within: float = 45.0) -> None:
        """Wait until each process answers /healthcheck and every shard among them is on."""
        shards = {p.shard for p in procs if p.shard is not None}
        await asyncio.wait_for(
            asyncio.gather(*(self._healthy(p) for p in procs), self.discord.wait_shards(shards)),
            within,
        )

    async def _healthy(self, proc: Proc) -> None:
        url = f"http://127.0.0.1:{proc.http_port}/healthcheck"
        async with aiohttp.ClientSession() as http:
            while True:
                if proc.process.returncode is not None:
                    raise AssertionError(f"{proc.name} exited:\n{proc.output()[-3000:]}")
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    async def wait_log(self, proc: Proc, text: str, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while text not in proc.output():
            assert time.monotonic() < deadline, f"{proc.name} never logged {text!r}"
            await asyncio.sleep(0.05)

    @staticmethod
    async def terminate(proc: Proc, within: float = 20.0) -> int:
        proc.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(proc.process.wait(), within)

    @staticmethod
    async def kill(proc: Proc) -> None:
        proc.process.kill()  # SIGKILL: no shutdown code runs
        await proc.process.wait()

    # --- Discord --------------------------------------------------------------------------

    async def publish_commands(self) -> None:
        """The owner has the bot publish its slash commands (a mention in shard 0's guild
        reaches shard 0's process only)."""
        calls = len(self.discord.calls)
        await self.discord.say(
            f"{self.discord.bot.mention} sync", self.discord.owner, guild=self.guild[0]
        )
        path = f"/applications/{self.discord.application_id}/commands"
        await self.discord.wait_for_call("PUT", path, within=15, after=calls)

    async def command(self, text: str, member: Member, shard: int) -> str:
        """Type a slash command in shard `shard`'s guild; the reply's text."""
        interaction = await self.discord.slash(text, member, guild=self.guild[shard])
        return (await interaction.reply(within=15)).text

    # --- people ---------------------------------------------------------------------------

    async def player(self, name: str, shard: int, *, both: bool = False) -> Member:
        """A member of shard `shard`'s guild (and of every guild with `both`), with a fake
        Spotify account of the same name, linked as if they had run /link."""
        member = self.discord.add_member(name, guild=self.guild[shard])
        if both:
            for guild in self.guild.values():
                guild.members[member.user_id] = member
        self.spotify.add_account(name)
        tokens = self.spotify.issue_tokens(name)
        await self.store.put_link(
            SpotifyLink(
                member.user_id,
                name,
                name.title(),
                tokens.access_token,
                tokens.refresh_token,
                tokens.expires_at,
                tokens.scopes,
                time.time(),
            )
        )
        return member

    # --- what the fake Spotify saw --------------------------------------------------------

    def sender(self, record: RequestRecord) -> str:
        """Which process sent a request (by the fake Spotify port it used)."""
        return next((p.name for p in self.procs if p.spotify_port == record.port), "?")

    def commands(
        self,
        account: str,
        *,
        after: float = 0.0,
        where: Callable[[RequestRecord], bool] | None = None,
    ) -> list[RequestRecord]:
        """Player commands sent for `account` since `after` (time.monotonic), oldest first."""
        return [
            r
            for r in self.spotify.log
            if r.account_id == account
            and (r.method, r.path) in COMMANDS
            and r.received_at >= after
            and (where is None or where(r))
        ]

    def played(self, account: str, track_id: str, *, after: float) -> list[RequestRecord]:
        """`PUT /me/player/play` commands of `track_id` for `account` since `after`."""
        return self.commands(
            account,
            after=after,
            where=lambda r: (
                r.path == "/v1/me/player/play"
                and isinstance(r.body, dict)
                and r.body.get("uris") == [f"spotify:track:{track_id}"]
            ),
        )

    async def first_play(
        self, account: str, track_id: str, *, after: float, within: float = 10.0
    ) -> RequestRecord:
        deadline = time.monotonic() + within
        while not (found := self.played(account, track_id, after=after)):
            assert time.monotonic() < deadline, (
                f"{account} was never commanded to play {track_id} "
                f"(commands since: {self.owners(account, after=after)})"
            )
            await asyncio.sleep(0.02)
        return found[0]

    def owners(self, account: str, *, after: float = 0.0) -> list[str]:
        """The processes that commanded `account`, in turn: each run of one process is one
        entry, so two processes commanding alternately show as more entries than hand-overs."""
        runs: list[str] = []
        for record in self.commands(account, after=after):
            name = self.sender(record)
            if not runs or runs[-1] != name:
                runs.append(name)
        return runs

    def wrong_process_commands(self, account: str) -> list[RequestRecord]:
        """Commands for `account` sent by a process after another had taken the listener's
        game night over from it: a loop that lost its guild must not command any more."""
        wrong, current, displaced = [], None, set()
        for record in self.commands(account):
            name = self.sender(record)
            if name in displaced:
                wrong.append(record)
            elif name != current:
                if current is not None:
                    displaced.add(current)
                current = name
        return wrong

    def commands_by_process(self, accounts: Iterable[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for account in accounts:
            for record in self.commands(account):
                counts[self.sender(record)] = counts.get(self.sender(record), 0) + 1
        return counts

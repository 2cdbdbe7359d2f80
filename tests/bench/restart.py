"""Restart: time from a restarted `python -m bot` process's start to the host's next change
reaching every listener, after `kill -9` and after SIGTERM (issue #12).

The bot runs as its own OS process against the fake Discord and the fake Spotify (both in this
process) with SQLite in a temporary folder. A session (host + 3 listeners) is stored, the bot
syncs it; then, per run, the bot is killed (SIGKILL or SIGTERM), the host skips to the next
track, a new bot process is started, and the clock runs from the moment it is spawned until
every listener plays the host's new track.

    .venv/bin/python -m tests.bench.restart [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet

from storage import TokenCipher, open_storage
from storage.records import ListenerState, Session, SpotifyLink
from tests.bot.test_process import child_env
from tests.conftest import free_port
from tests.fakes.discord import FakeDiscord
from tests.fakes.spotify import FakeSpotify

HOST, LISTENERS = 11, (12, 13, 14)


LOG: Path | None = None  # --log FILE: the bot processes' output, to see where time goes


async def spawn(folder: Path) -> asyncio.subprocess.Process:
    out = LOG.open("ab") if LOG is not None else asyncio.subprocess.DEVNULL
    if LOG is not None:
        LOG.open("a").write(f"--- spawned at {time.time():.3f}\n")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=folder, env=child_env(),
        stdout=out, stderr=out,
    )  # fmt: skip


def write_env(folder: Path, discord: FakeDiscord, spotify: FakeSpotify, key: str) -> None:
    (folder / ".env").write_text(
        "\n".join(
            [
                f"DISCORD_TOKEN={discord.token}",
                f"DISCORD_API_BASE={discord.api_base}",
                f"DISCORD_GATEWAY_URL={discord.gateway_url}",
                f"DISCORD_DEV_GUILD_ID={discord.default_guild.id}",
                f"SPOTIFY_CLIENT_ID={spotify.app.client_id}",
                f"SPOTIFY_CLIENT_SECRET={spotify.app.client_secret}",
                f"SPOTIFY_API_BASE={spotify.base}",
                f"SPOTIFY_ACCOUNTS_BASE={spotify.base}",
                f"TOKEN_ENCRYPTION_KEY={key}",
                f"HTTP_PORT={free_port()}",
                f"STORAGE_URL=sqlite:///{folder / 'gamenight.db'}",
                f"LOG_LEVEL={'INFO' if LOG is not None else 'WARNING'}",
            ]
        )
    )


async def seed(folder: Path, discord: FakeDiscord, spotify: FakeSpotify, key: str) -> None:
    store = await open_storage(f"sqlite:///{folder / 'gamenight.db'}", TokenCipher.from_keys(key))
    try:
        for uid in (HOST, *LISTENERS):
            spotify.add_account(f"a{uid}")
            tokens = spotify.issue_tokens(f"a{uid}")
            await store.put_link(
                SpotifyLink(uid, f"a{uid}", f"A{uid}", tokens.access_token,
                            tokens.refresh_token, tokens.expires_at, tokens.scopes, time.time())
            )  # fmt: skip
        now = time.time()
        listeners = {u: ListenerState(u, joined_at=now, updated_at=now) for u in LISTENERS}
        guild = discord.default_guild
        await store.create_session(
            Session(guild.id, HOST, now, channel_id=guild.text_channel_id, host_active_at=now,
                    listeners=listeners)
        )  # fmt: skip
    finally:
        await store.aclose()


def following(spotify: FakeSpotify) -> bool:
    host = spotify.player(f"a{HOST}").now()
    return all(
        (p := spotify.player(f"a{u}").now()).track_id == host.track_id and p.is_playing
        for u in LISTENERS
    )


async def wait(check: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("listeners did not follow in time")
        await asyncio.sleep(0.01)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    global LOG  # noqa: PLW0603  # a bench script's one switch
    LOG = args.log
    results: dict[str, list[float]] = {"kill -9": [], "SIGTERM": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        discord, spotify = await FakeDiscord().start(), await FakeSpotify().start()
        key = Fernet.generate_key().decode()
        write_env(folder, discord, spotify, key)
        await seed(folder, discord, spotify, key)
        host = spotify.player(f"a{HOST}")
        host.load([t.id for t in spotify.catalog[:12]], position_ms=10_000)
        proc = await spawn(folder)
        try:
            await wait(lambda: following(spotify), 60)
            # Interleaved, so a load spike on the machine does not land on one kind only.
            kinds = (("kill -9", signal.SIGKILL), ("SIGTERM", signal.SIGTERM))
            for _ in range(args.runs):
                for how, sig in kinds:
                    await asyncio.sleep(1.0)  # steady state
                    proc.send_signal(sig)
                    await proc.wait()
                    host.next()
                    started = time.monotonic()
                    proc = await spawn(folder)
                    await wait(lambda: following(spotify), 30)
                    results[how].append(time.monotonic() - started)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await discord.stop()
            await spotify.stop()
    for how, times in results.items():
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"restart after {how}, runs (s): {runs}; p50 {statistics.median(times):.2f} s")
    print(f"restart after kill -9: {max(results['kill -9']):.2f} s")
    print(f"restart after SIGTERM: {max(results['SIGTERM']):.2f} s")


if __name__ == "__main__":
    asyncio.run(main())

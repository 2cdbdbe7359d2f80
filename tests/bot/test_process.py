"""`python -m bot` as an operator runs it (`make run`): a .env pointing at the fakes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from tests.conftest import free_port
from tests.fakes.discord import FakeDiscord
from tests.fakes.spotify import FakeSpotify

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """This environment without any Game Night keys: the .env file must be what counts."""
    keys = ("DISCORD_", "SPOTIFY_", "TOKEN_", "STORAGE_", "HTTP_", "PUBLIC_", "LOG_", "CORS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(keys)}
    env["PYTHONPATH"] = str(ROOT)
    return env


async def python_m_bot(cwd: Path, *args: str) -> asyncio.subprocess.Process:
    """`python -m bot ARGS` in `cwd` (where its .env is, if any), output captured."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def write_env(folder: Path, fake: FakeDiscord, spotify: FakeSpotify, port: int, token: str) -> None:
    """A .env pointing the bot at the fakes, as an operator would write it."""
    (folder / ".env").write_text(
        "\n".join(
            [
                f"DISCORD_TOKEN={token}",
                f"DISCORD_API_BASE={fake.api_base}",
                f"DISCORD_GATEWAY_URL={fake.gateway_url}",
                f"DISCORD_DEV_GUILD_ID={fake.default_guild.id}",
                f"SPOTIFY_CLIENT_ID={spotify.app.client_id}",
                f"SPOTIFY_CLIENT_SECRET={spotify.app.client_secret}",
                f"SPOTIFY_API_BASE={spotify.base}",
                f"SPOTIFY_ACCOUNTS_BASE={spotify.base}",
                f"TOKEN_ENCRYPTION_KEY={Fernet.generate_key().decode()}",
                f"HTTP_PORT={port}",
                f"STORAGE_URL=sqlite:///{folder / 'gamenight.db'}",
            ]
        )
    )


async def test_python_m_bot_connects_answers_link_and_stops_on_sigterm(tmp_path: Path) -> None:
    fake = await FakeDiscord().start()
    spotify = await FakeSpotify().start()
    port = free_port()
    write_env(tmp_path, fake, spotify, port, fake.token)
    proc = await python_m_bot(tmp_path)
    try:
        await fake.wait_ready(within=30)
        await fake.wait_for_call("PUT", f"/applications/{fake.application_id}/guilds/", within=30)
        alice = fake.add_member("alice")
        reply = await (await fake.slash("link", alice)).reply(within=10)
        assert reply.ephemeral
        (url,) = reply.link_urls()
        assert url.startswith(spotify.base + "/authorize")
        assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Fspotify%2Fcallback" in url

        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await fake.stop()
        await spotify.stop()


async def test_python_m_bot_with_a_wrong_token_says_so_and_exits_1(tmp_path: Path) -> None:
    fake = await FakeDiscord().start()
    spotify = await FakeSpotify().start()
    write_env(tmp_path, fake, spotify, free_port(), "not-the-bot-token")
    try:
        proc = await python_m_bot(tmp_path)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await fake.stop()
        await spotify.stop()
    assert proc.returncode == 1, stderr.decode()
    assert b"Discord refused the bot token: check DISCORD_TOKEN" in stderr
    assert b"Traceback" not in stderr


async def test_python_m_bot_with_missing_settings_exits_2_without_traceback(
    tmp_path: Path,
) -> None:
    proc = await python_m_bot(tmp_path)
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"DISCORD_TOKEN is missing" in stderr
    assert b"Traceback" not in stderr

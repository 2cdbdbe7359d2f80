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


async def test_python_m_bot_connects_answers_link_and_stops_on_sigterm(tmp_path: Path) -> None:
    fake = await FakeDiscord().start()
    spotify = await FakeSpotify().start()
    port = free_port()
    (tmp_path / ".env").write_text(
        "\n".join(
            [
                f"DISCORD_TOKEN={fake.token}",
                f"DISCORD_API_BASE={fake.api_base}",
                f"DISCORD_GATEWAY_URL={fake.gateway_url}",
                f"DISCORD_DEV_GUILD_ID={fake.default_guild.id}",
                f"SPOTIFY_CLIENT_ID={spotify.app.client_id}",
                f"SPOTIFY_CLIENT_SECRET={spotify.app.client_secret}",
                f"SPOTIFY_API_BASE={spotify.base}",
                f"SPOTIFY_ACCOUNTS_BASE={spotify.base}",
                f"TOKEN_ENCRYPTION_KEY={Fernet.generate_key().decode()}",
                f"HTTP_PORT={port}",
                f"STORAGE_URL=sqlite:///{tmp_path / 'gamenight.db'}",
            ]
        )
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
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


async def test_python_m_bot_with_missing_settings_exits_2_without_traceback(
    tmp_path: Path,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"DISCORD_TOKEN is missing" in stderr
    assert b"Traceback" not in stderr

"""The operator's first start (issue #14 items 2-5): checks, one-line failures, the ready line."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from bot.__main__ import main, running
from bot.keyfile import KEY_FILE, new_key, with_stored_key
from bot.settings import load_settings
from bot.startup import redirect_warnings
from storage.crypto import TokenCipher
from storage.errors import StorageError
from tests.bot.conftest import World
from tests.bot.test_process import python_m_bot, write_env
from tests.conftest import free_port
from tests.fakes.discord import FakeDiscord
from tests.fakes.spotify import FakeSpotify


def _no_key(folder: Path) -> None:
    env = folder / ".env"
    lines = env.read_text().splitlines()
    env.write_text("\n".join(x for x in lines if not x.startswith("TOKEN_ENCRYPTION_KEY")))


async def _start_and_stop(
    folder: Path, fake: FakeDiscord, *, wait_for: bytes = b"ready as"
) -> tuple[int, str]:
    proc = await python_m_bot(folder)
    assert proc.stderr is not None
    seen = b""
    try:
        async with asyncio.timeout(30):
            while wait_for not in seen:
                line = await proc.stderr.readline()
                assert line, f"exited early: {seen.decode()}"
                seen += line
        proc.terminate()
        rest = await asyncio.wait_for(proc.stderr.read(), 20)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, (seen + rest).decode()


async def test_first_start_without_a_key_makes_one_and_says_ready_with_an_invite(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await FakeDiscord().start()
    spotify = await FakeSpotify().start()
    write_env(tmp_path, fake, spotify, free_port(), fake.token)
    _no_key(tmp_path)
    env = (tmp_path / ".env").read_text()
    (tmp_path / ".env").write_text(
        "\n".join(x for x in env.splitlines() if not x.startswith("DISCORD_DEV_GUILD_ID"))
    )
    try:
        status, log = await _start_and_stop(tmp_path, fake)
        key_file = tmp_path / KEY_FILE
        assert status == 0, log
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert f"a new key was written to {key_file}" in log
        assert "Back that file up" in log
        (ready,) = [line for line in log.splitlines() if "ready as" in line]
        assert "ready as Game Night" in ready
        assert "in 1 guild(s): Game Night HQ" in ready
        # No DISCORD_DEV_GUILD_ID and nothing synced globally: say how to register them.
        assert "slash commands NOT registered" in ready and "@Bot sync" in ready
        assert f"client_id={fake.application_id}" in ready
        # View Channel, Send Messages, Embed Links, Read Message History
        assert "permissions=84992" in ready
        assert "scope=bot+applications.commands" in ready
        # Nothing uses voice: discord.py's PyNaCl/davey warnings stay out of the log.
        assert "PyNaCl" not in log and "davey" not in log
        assert "Traceback" not in log

        # A later start reads the same key, quietly: the settings step of `python -m bot` on
        # that .env, in this process (a second bot process would prove nothing more).
        key = key_file.read_text()
        caplog.clear()
        later = with_stored_key(load_settings({}, dotenv_path=tmp_path / ".env"))
        assert later.token_encryption_key == key.strip()
        assert key_file.read_text() == key
        assert "a new key was written" not in caplog.text
    finally:
        await fake.stop()
        await spotify.stop()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "SPOTIFY_CLIENT_SECRET=wrong-secret",
            "Spotify refused SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT",
        ),
        ("SPOTIFY_CLIENT_ID=not-our-app", "Spotify refused SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT"),
        ("SPOTIFY_ACCOUNTS_BASE=http://127.0.0.1:{closed}", "cannot reach Spotify at"),
        ("DISCORD_API_BASE=http://127.0.0.1:{closed}/api/v10", "cannot reach Discord at"),
    ],
)
async def test_start_up_failures_are_one_line_and_exit_1(
    tmp_path: Path, line: str, expected: str
) -> None:
    fake = await FakeDiscord().start()
    spotify = await FakeSpotify().start()
    write_env(tmp_path, fake, spotify, free_port(), fake.token)
    key = line.split("=", 1)[0]
    kept = [x for x in (tmp_path / ".env").read_text().splitlines() if not x.startswith(key + "=")]
    kept.append(line.format(closed=free_port()))
    (tmp_path / ".env").write_text("\n".join(kept))
    try:
        proc = await python_m_bot(tmp_path)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await fake.stop()
        await spotify.stop()
    text = stderr.decode()
    assert proc.returncode == 1, text
    assert expected in text
    assert "Traceback" not in text
    assert len([x for x in text.splitlines() if expected in x]) == 1
    assert "wrong-secret" not in text


async def test_a_dropped_gateway_resumes_without_an_error_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async with world.run():
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            resumes = world.discord.resume_count
            await world.discord.drop_connection(4000)
            await world.discord.wait_until(lambda: world.discord.resume_count > resumes, 20)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_a_failed_reconnect_is_one_warning_line_without_traceback(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A dropped gateway whose resume is refused once (503): discord.py's own reconnect path
    logs it with a traceback; we see one WARNING line, then the bot is back."""
    async with world.run():
        caplog.clear()
        with caplog.at_level(logging.INFO):
            resumes = world.discord.resume_count
            world.discord.gateway_refusals = 1
            await world.discord.drop_connection(4000)
            # discord.py's backoff waits up to a few seconds before the next attempt.
            await world.discord.wait_until(lambda: world.discord.resume_count > resumes, 30)
        assert world.discord.gateway_refusals == 0  # the refusal really happened
        problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(problems) == 1, caplog.text
        (record,) = problems
        assert record.name == "discord.client"
        assert record.exc_info is None and not record.exc_text
        assert re.fullmatch(
            r"lost the Discord connection \(.*503.*\); reconnecting in \d+ s", record.getMessage()
        ), record.getMessage()
        assert "Traceback" not in caplog.text


async def test_the_ready_line_names_the_dev_guild(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bot"):
        async with running(world.settings, client_options={"guild_ready_timeout": 0.05}):
            await world.discord.wait_ready()
            for _ in range(100):
                if any("ready as" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
    (ready,) = [r.getMessage() for r in caplog.records if "ready as" in r.getMessage()]
    assert f"slash commands in development guild {world.discord.default_guild.id}" in ready


def test_redirect_warnings_name_loopback_callbacks_and_foreign_paths(world: World) -> None:
    (loopback,) = redirect_warnings(world.settings)
    assert "only a browser on this machine" in loopback and "PUBLIC_BASE_URL" in loopback
    public = dataclasses.replace(
        world.settings, spotify_redirect_uri="https://gn.example.com/spotify/callback"
    )
    assert redirect_warnings(public) == []
    elsewhere = dataclasses.replace(
        world.settings, spotify_redirect_uri="https://gn.example.com/cb"
    )
    (path,) = redirect_warnings(elsewhere)
    assert "'/cb'" in path


def test_a_set_key_always_wins_over_the_file(world: World, tmp_path: Path) -> None:
    file_key = new_key()
    (tmp_path / KEY_FILE).write_text(file_key + "\n")
    settings = dataclasses.replace(world.settings, storage_url=f"sqlite:///{tmp_path}/g.db")
    assert with_stored_key(settings).token_encryption_key == settings.token_encryption_key
    unset = dataclasses.replace(settings, token_encryption_key="")
    assert with_stored_key(unset).token_encryption_key == file_key


def make(target: str, **env_changes: str) -> subprocess.CompletedProcess[str]:
    """`make TARGET` in the project, as an operator runs it (not inside another make)."""
    env = {k: v for k, v in os.environ.items() if k != "MAKEFLAGS"}
    env.update(env_changes)
    return subprocess.run(
        # -o: take the venv as installed (a test must not reinstall anything).
        ["make", "--no-print-directory", "-o", ".venv/.installed", target],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_make_run_keeps_the_bots_exit_status(tmp_path: Path) -> None:
    """`make run` with missing settings: the bot's own report, and its status 2 reaches the caller
    (make adds "Error 2": a script or CI must see the failure)."""
    done = make("run", DISCORD_TOKEN="", SPOTIFY_CLIENT_ID="", SPOTIFY_CLIENT_SECRET="")
    assert "DISCORD_TOKEN is missing" in done.stderr
    assert done.returncode == 2, done.stderr  # make's own status for any failed recipe
    assert "Traceback" not in done.stderr


def test_make_run_with_only_the_discord_token_says_what_is_off(tmp_path: Path) -> None:
    """The bot needs only DISCORD_TOKEN (#16); the log names each optional setting left unset and
    what that turns off, before the (here unreachable) Discord says why it stopped."""
    done = make(
        "run",
        DISCORD_TOKEN="a-token",
        SPOTIFY_CLIENT_ID="",
        SPOTIFY_CLIENT_SECRET="",
        TOKEN_ENCRYPTION_KEY="",
        STORAGE_URL=f"sqlite:///{tmp_path}/gamenight.db",
        HTTP_PORT=str(free_port()),
        DISCORD_API_BASE=f"http://127.0.0.1:{free_port()}/api/v10",
    )
    assert "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are not set: /link" in done.stderr
    assert "TOKEN_ENCRYPTION_KEY is not set, so a new key was written" in done.stderr
    assert "cannot reach Discord at" in done.stderr
    assert done.returncode == 2, done.stderr  # the bot's 1, as make reports any failure
    assert "Traceback" not in done.stderr


def test_containers_listen_on_every_interface_whatever_env_says() -> None:
    root = Path(__file__).resolve().parents[2]
    lines = (root / "Dockerfile").read_text().splitlines()
    entry = next(x for x in lines if x.startswith("ENTRYPOINT"))
    # In the entrypoint, so an overriding command (`docker run IMAGE python -m bot web`) keeps it.
    assert json.loads(entry.removeprefix("ENTRYPOINT").strip()) == ["env", "HTTP_HOST=0.0.0.0"]
    cmd = next(x for x in lines if x.startswith("CMD"))
    assert json.loads(cmd.removeprefix("CMD").strip()) == ["python", "-m", "bot"]
    assert "pip install '.[mysql]'" in "\n".join(lines)  # import-songs works in the image
    example = (root / ".env.example").read_text()
    # Copied to .env and passed with --env-file, an uncommented HTTP_HOST would win over ENV.
    assert re.search(r"^HTTP_HOST=", example, flags=re.M) is None
    assert re.search(r"^REDIS_PASSWORD=", example, flags=re.M)  # docker compose needs it


def test_rotation_from_a_generated_key_keeps_old_tokens_readable(
    world: World, tmp_path: Path
) -> None:
    unset = dataclasses.replace(
        world.settings, token_encryption_key="", storage_url=f"sqlite:///{tmp_path}/g.db"
    )
    generated = with_stored_key(unset).token_encryption_key
    sealed = with_stored_key(unset).cipher().encrypt("refresh-token")
    rotated = dataclasses.replace(unset, token_encryption_key=f"{new_key()},{generated}")
    cipher = with_stored_key(rotated).cipher()
    assert cipher.decrypt(sealed) == "refresh-token"  # the old key still decrypts
    with pytest.raises(StorageError):  # and the new one encrypts
        TokenCipher.from_keys(generated).decrypt(cipher.encrypt("x"))


async def test_heartbeats_do_not_look_a_whole_interval_late(world: World) -> None:
    """The sandbox's "Can't keep up, websocket is 41.2s behind" came from an instant fake ACK
    racing discord.py's keep-alive thread (the ACK landed before the thread noted its send, so
    the latency read as a whole interval); the fake now answers after a network-like delay."""
    world.discord.heartbeat_interval_ms = 400
    seen = []
    async with world.run() as app:
        for _ in range(12):
            beats = world.discord.heartbeats
            await world.discord.wait_until(lambda b=beats: world.discord.heartbeats > b, 5)
            await asyncio.sleep(0.15)
            seen.append(app.bot.latency)
    assert max(seen[1:]) < 0.3, seen  # the interval (0.4 s) would mean the race was lost


def test_keygen_prints_a_key_and_make_key_prints_only_that(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keygen"]) == 0
    key = capsys.readouterr().out
    assert key.endswith("\n") and key.count("\n") == 1
    TokenCipher.from_keys(key)
    done = make("key")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()  # nothing but the key on stdout
    assert line != key.strip()
    TokenCipher.from_keys(line)

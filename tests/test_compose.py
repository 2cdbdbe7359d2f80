"""docker-compose.yml as `docker compose config` reads it: two shards, a web replica, Redis.

Runs `docker compose config` (or Debian's `docker-compose config`; .ci/run installs it when
neither is there) in a copy of the project's compose file with a .env made from .env.example,
then checks what an operator would get: each bot service's environment is a valid
configuration for `bot.settings`, the shards split the shard count between them, the web
replica runs `python -m bot web` and is the only one with a published port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from bot.settings import BOT_KEYS, WEB_KEYS, load_settings

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    if (legacy := shutil.which("docker-compose")) is not None:
        return [legacy]
    message = "neither `docker compose` nor `docker-compose` is installed (apt: docker-compose)"
    if IN_CI:
        pytest.fail(message + "; under CI=true this fails the run")
    pytest.skip(message)


def compose_config(folder: Path, env_lines: list[str]) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "docker-compose.yml", folder)
    shutil.copy(ROOT / "Dockerfile", folder)
    (folder / ".env").write_text("\n".join(env_lines) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_PASSWORD", "HTTP_PORT")}
    return subprocess.run(
        [*compose_command(), "config"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def operator_env() -> list[str]:
    """.env.example with the required keys and a Redis password filled in."""
    filled = {
        "DISCORD_TOKEN": "discord-token",
        "SPOTIFY_CLIENT_ID": "client-id",
        "SPOTIFY_CLIENT_SECRET": "client-secret",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={filled[key]}" if key in filled else line)
    return [*lines, "REDIS_PASSWORD=s3cret"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # docker-compose v1 may print KEY=value items
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def test_compose_runs_two_shards_a_web_replica_and_redis(tmp_path: Path) -> None:
    done = compose_config(tmp_path, operator_env())
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    # docker-compose v1 prints services of inactive profiles too (the optional PO-token
    # provider under `pot`); `docker compose` v2 leaves them out.
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == {"shard0", "shard1", "web", "redis"}

    settings = {
        name: load_settings(
            environment(services[name]),
            dotenv_path=None,
            required=WEB_KEYS if name == "web" else BOT_KEYS,
        )
        for name in ("shard0", "shard1", "web")
    }
    for name, s in settings.items():
        assert s.storage_url == "redis://:s3cret@redis:6379/0", name
        assert (s.http_host, s.http_port) == ("0.0.0.0", 8000), name
    shards = [settings[f"shard{i}"] for i in (0, 1)]
    assert [s.discord_shard_count for s in shards] == [2, 2]
    assert [s.discord_shard_ids for s in shards] == [(0,), (1,)]
    assert all(s.discord_token for s in shards)

    command = services["web"]["command"]
    assert (command.split() if isinstance(command, str) else command)[-2:] == ["bot", "web"]
    assert "command" not in services["shard0"] and "command" not in services["shard1"]
    assert [name for name, s in services.items() if s.get("ports")] == ["web"]


def test_compose_without_a_redis_password_says_so(tmp_path: Path) -> None:
    done = compose_config(tmp_path, operator_env()[:-1])
    assert done.returncode != 0
    assert "set REDIS_PASSWORD in .env" in done.stderr

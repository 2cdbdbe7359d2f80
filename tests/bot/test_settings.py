"""Settings: defaults, validation, and one message naming every problem."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.services import spotify_config
from bot.settings import SettingsError, load_settings

KEY = Fernet.generate_key().decode()
MINIMAL = {
    "DISCORD_TOKEN": "discord-token",
    "SPOTIFY_CLIENT_ID": "client-id",
    "SPOTIFY_CLIENT_SECRET": "client-secret",
    "TOKEN_ENCRYPTION_KEY": KEY,
}
REQUIRED = ("DISCORD_TOKEN",)  # the Spotify app keys are optional (voice branch)
ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = load_settings(MINIMAL, dotenv_path=None)
    assert s.storage_url == "sqlite:///data/gamenight.db"
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8000)
    assert s.spotify_redirect_uri == "http://127.0.0.1:8000/spotify/callback"
    assert s.cors_origins == ("*",)
    assert s.log_level == "INFO"
    assert s.cipher().decrypt(s.cipher().encrypt("x")) == "x"


def test_secrets_stay_out_of_repr() -> None:
    text = repr(load_settings(MINIMAL, dotenv_path=None))
    assert "discord-token" not in text and "client-secret" not in text and KEY not in text


def test_every_missing_setting_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({}, dotenv_path=None)
    report = caught.value.report()
    for key in REQUIRED:
        assert key in report
    # Unset, TOKEN_ENCRYPTION_KEY is generated into the data folder (tests/bot/test_keyfile.py).
    assert "TOKEN_ENCRYPTION_KEY" not in report
    assert "SPOTIFY_CLIENT_ID" not in report  # optional (voice branch)
    assert len(caught.value.problems) == 1


def test_spotify_app_keys_are_optional_but_go_together() -> None:
    bare = {k: v for k, v in MINIMAL.items() if not k.startswith("SPOTIFY_")}
    settings = load_settings(bare, dotenv_path=None)
    assert not settings.spotify_app
    assert load_settings(MINIMAL, dotenv_path=None).spotify_app
    with pytest.raises(SettingsError) as caught:
        load_settings({**bare, "SPOTIFY_CLIENT_ID": "only-the-id"}, dotenv_path=None)
    assert caught.value.problems == [
        "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET go together: set both"
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HTTP_PORT", "eighty"),
        ("HTTP_PORT", "70000"),
        ("STORAGE_URL", "mysql://db"),
        ("LOG_LEVEL", "loud"),
        ("TOKEN_ENCRYPTION_KEY", "not-a-fernet-key"),
        ("SPOTIFY_REDIRECT_URI", "http://localhost:8000/spotify/callback"),
        ("SPOTIFY_REDIRECT_URI", "http://example.com/callback"),
        ("PUBLIC_BASE_URL", "ftp://example.com"),
        ("DISCORD_GATEWAY_URL", "http://127.0.0.1:1/gateway"),
        ("DISCORD_DEV_GUILD_ID", "-5"),
        ("CORS_ORIGINS", " , "),
    ],
)
def test_invalid_values_are_named(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**MINIMAL, key: value}, dotenv_path=None)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(key)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TOKEN_ENCRYPTION_KEY", f"{KEY},typo-in-the-old-key"),
        ("STORAGE_URL", "rediss+x://:hunter2@cache:6379/0"),
    ],
)
def test_invalid_secrets_are_named_but_not_shown(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**MINIMAL, key: value}, dotenv_path=None)
    report = caught.value.report()
    assert key in report
    assert "hunter2" not in report and KEY not in report and "typo" not in report


def test_public_http_base_needs_an_explicit_https_redirect() -> None:
    with pytest.raises(SettingsError, match="PUBLIC_BASE_URL"):
        load_settings({**MINIMAL, "PUBLIC_BASE_URL": "http://bot.example.com"}, dotenv_path=None)
    s = load_settings({**MINIMAL, "PUBLIC_BASE_URL": "https://bot.example.com/"}, dotenv_path=None)
    assert s.spotify_redirect_uri == "https://bot.example.com/spotify/callback"


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in MINIMAL.items()) + "\nHTTP_PORT=9000\n")
    s = load_settings({"HTTP_PORT": "9100"}, dotenv_path=env_file)
    assert s.discord_token == "discord-token"
    assert s.http_port == 9100


def test_cors_origins_list() -> None:
    s = load_settings({**MINIMAL, "CORS_ORIGINS": "https://a.example, https://b.example/"}, None)
    assert s.cors_origins == ("https://a.example", "https://b.example")


def test_running_with_an_empty_environment_explains_and_exits(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    for key in REQUIRED:
        assert key in done.stderr


def test_env_example_documents_every_setting() -> None:
    source = (ROOT / "bot" / "settings.py").read_text()
    read = set(re.findall(r'r\.(?:required|parsed|raw)\(\s*"([A-Z_]+)"', source))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?([A-Z_]+)=", example, flags=re.M))
    documented -= {"REDIS_PASSWORD"}  # read by docker-compose.yml, not by the bot
    assert read, "found no settings in bot/settings.py"
    assert read == documented, f"undocumented: {read - documented}, stale: {documented - read}"


def test_env_example_with_required_keys_filled_is_valid(tmp_path: Path) -> None:
    text = (ROOT / ".env.example").read_text()
    for key, value in MINIMAL.items():
        text = text.replace(f"{key}=\n", f"{key}={value}\n")
    env_file = tmp_path / ".env"
    env_file.write_text(text)
    settings = load_settings({}, dotenv_path=env_file)
    assert settings.storage_url == "sqlite:///data/gamenight.db"


def test_spotify_settings_reach_the_client_config() -> None:
    env = {**MINIMAL, "SPOTIFY_RATE_LIMIT": "600", "SPOTIFY_WORKERS": "12"}
    config = spotify_config(load_settings(env, dotenv_path=None))
    assert (config.rate_limit, config.max_workers) == (600, 12)
    assert config.client_id == "client-id"
    assert config.redirect_uri == "http://127.0.0.1:8000/spotify/callback"


def test_shard_settings() -> None:
    env = {**MINIMAL, "DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "3, 1"}
    settings = load_settings(env, dotenv_path=None)
    assert (settings.discord_shard_count, settings.discord_shard_ids) == (4, (1, 3))
    unsharded = load_settings(MINIMAL, dotenv_path=None)
    assert (unsharded.discord_shard_count, unsharded.discord_shard_ids) == (None, None)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "2"}, "shard ids run from 0 to 1"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "-1"}, "DISCORD_SHARD_IDS='-1'"),
        ({"DISCORD_SHARD_COUNT": "0"}, "DISCORD_SHARD_COUNT='0'"),
        ({"SYNC_LEASE_TTL": "0"}, "SYNC_LEASE_TTL='0'"),
    ],
)
def test_bad_shard_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**MINIMAL, **env}, dotenv_path=None)
    assert len(caught.value.problems) == 1
    assert named in caught.value.problems[0]

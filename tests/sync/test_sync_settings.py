"""The sync settings: read from the environment, validated with the rest."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from bot.settings import SettingsError, load_settings

BASE = {
    "DISCORD_TOKEN": "t",
    "SPOTIFY_CLIENT_ID": "id",
    "SPOTIFY_CLIENT_SECRET": "secret",
    "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
}


def test_defaults_and_overrides() -> None:
    default = load_settings(BASE, dotenv_path=None)
    assert (default.sync_poll_interval_s, default.sync_drift_threshold_ms) == (1.0, 1500)
    assert default.host_idle_timeout_s == 1800.0
    assert default.spotify_workers == 32
    custom = load_settings(
        {
            **BASE,
            "SYNC_POLL_INTERVAL": "0.5",
            "SYNC_DRIFT_THRESHOLD_MS": "900",
            "HOST_IDLE_TIMEOUT": "0",
            "SPOTIFY_WORKERS": "64",
        },
        dotenv_path=None,
    )
    assert (custom.sync_poll_interval_s, custom.sync_drift_threshold_ms) == (0.5, 900)
    assert custom.spotify_workers == 64
    assert custom.host_idle_timeout_s == 0.0


def test_bad_values_are_all_named() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                **BASE,
                "SYNC_POLL_INTERVAL": "0",
                "SYNC_DRIFT_THRESHOLD_MS": "x",
                "HOST_IDLE_TIMEOUT": "-5",
            },
            dotenv_path=None,
        )
    assert [p.split("=")[0] for p in caught.value.problems] == [
        "SYNC_POLL_INTERVAL",
        "SYNC_DRIFT_THRESHOLD_MS",
        "HOST_IDLE_TIMEOUT",
    ]

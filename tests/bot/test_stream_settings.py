"""The streams settings (#11): YouTube from a server, the audio relay, forced re-matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.services import relay_config, youtube_config
from bot.settings import SettingsError, load_settings
from tests.bot.test_settings import MINIMAL


def test_streams_settings_reach_yt_dlp_and_the_relay(tmp_path: Path) -> None:
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    env = {
        **MINIMAL,
        "YOUTUBE_COOKIES_FILE": str(cookies),
        "YOUTUBE_PROXY": "socks5://u:p@10.1.2.3:1080",
        "YOUTUBE_SOURCE_ADDRESS": "192.0.2.10",
        "YOUTUBE_EXTRACTOR_ARGS": "youtube:player_client=default,mweb",
        "YOUTUBE_POT_PROVIDER_URL": "http://bgutil-provider:4416",
        "RELAY_URL_TTL": "600",
        "SONG_RAW_URLS": "true",
        "FORCE_COOLDOWN": "30",
    }
    settings = load_settings(env, dotenv_path=None)
    options = youtube_config(settings).ydl_options()
    assert options["cookiefile"] == str(cookies)
    assert options["proxy"] == "socks5://u:p@10.1.2.3:1080"
    assert options["source_address"] == "192.0.2.10"
    assert options["extractor_args"]["youtube"] == {"player_client": ["default", "mweb"]}
    assert options["extractor_args"]["youtubepot-bgutilhttp"]["base_url"] == [
        "http://bgutil-provider:4416"
    ]
    relay = relay_config(settings)
    assert relay.raw_song_urls is True
    assert relay.signer.ttl_s == 600
    assert relay.route.proxy == "socks5://u:p@10.1.2.3:1080"
    assert relay.route.source_address == "192.0.2.10"
    assert settings.force_cooldown_s == 30
    assert "u:p@" not in repr(settings)  # the proxy may carry a password


def test_relay_secret_defaults_to_one_derived_from_the_token_key() -> None:
    a = relay_config(load_settings(MINIMAL, dotenv_path=None)).signer
    b = relay_config(load_settings(MINIMAL, dotenv_path=None)).signer
    c = relay_config(load_settings({**MINIMAL, "RELAY_SECRET": "x" * 32}, dotenv_path=None)).signer
    url = a.url("4PTG3Z6ehGkBFwjybzWkR8", until=2e9)
    assert url == b.url("4PTG3Z6ehGkBFwjybzWkR8", until=2e9)  # stable across restarts
    assert url != c.url("4PTG3Z6ehGkBFwjybzWkR8", until=2e9)


def test_bad_streams_settings_are_all_named(tmp_path: Path) -> None:
    env = {
        **MINIMAL,
        "YOUTUBE_COOKIES_FILE": str(tmp_path / "missing.txt"),
        "YOUTUBE_PROXY": "ftp://secret-pass@proxy",
        "YOUTUBE_SOURCE_ADDRESS": "not-an-ip",
        "YOUTUBE_EXTRACTOR_ARGS": "player_client=web",
        "YOUTUBE_POT_PROVIDER_URL": "bgutil:4416",
        "RELAY_SECRET": "short",
        "SONG_RAW_URLS": "maybe",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(env, dotenv_path=None)
    report = caught.value.report()
    for key in env.keys() - MINIMAL.keys():
        assert key in report
    assert "secret-pass" not in report
    assert "short" not in report.replace("RELAY_SECRET is not valid", "")

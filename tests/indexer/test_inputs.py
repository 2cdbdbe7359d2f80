"""Pure pieces of the indexer: playlist references, and the settings the job needs."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from bot.settings import INDEXER_KEYS, SettingsError, load_settings
from core.indexer import parse_playlist_id

ID = "37i9dQZF1DXcBWIGoYBM5M"


@pytest.mark.parametrize(
    "text",
    [
        ID,
        f"  {ID}\n",
        f"spotify:playlist:{ID}",
        f"https://open.spotify.com/playlist/{ID}",
        f"https://open.spotify.com/playlist/{ID}?si=1a2b3c4d5e6f",
        f"https://open.spotify.com/intl-de/playlist/{ID}",
        f"http://open.spotify.com/embed/playlist/{ID}/",
        f"open.spotify.com/playlist/{ID}#top",
    ],
)
def test_playlist_references_give_the_id(text: str) -> None:
    assert parse_playlist_id(text) == ID


@pytest.mark.parametrize(
    "text",
    [
        "",
        ID[:-1],
        ID + "x",
        f"spotify:track:{ID}",
        f"https://open.spotify.com/track/{ID}",
        f"https://open.spotify.com.evil.example/playlist/{ID}",
        f"https://evil.example/open.spotify.com/playlist/{ID}",
        f"spotify:playlist:{ID}:extra",
    ],
)
def test_anything_else_is_refused_with_what_to_give(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a Spotify playlist: give an open\.spotify\.com"):
        parse_playlist_id(text)


def test_the_indexer_needs_no_discord_token_but_the_bot_does() -> None:
    env = {
        "SPOTIFY_CLIENT_ID": "client-id",
        "SPOTIFY_CLIENT_SECRET": "client-secret",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    settings = load_settings(env, dotenv_path=None, required=INDEXER_KEYS)
    assert settings.discord_token == ""
    assert settings.spotify_client_id == "client-id"

    with pytest.raises(SettingsError) as caught:
        load_settings(env, dotenv_path=None)
    assert caught.value.problems == [
        "DISCORD_TOKEN is missing (the bot token from the Discord developer portal)"
    ]

    with pytest.raises(SettingsError) as caught:
        load_settings({}, dotenv_path=None, required=INDEXER_KEYS)
    # TOKEN_ENCRYPTION_KEY may be unset: it is then kept in the data folder (bot/keyfile.py).
    assert len(caught.value.problems) == 2
    assert not any("DISCORD_TOKEN" in p for p in caught.value.problems)

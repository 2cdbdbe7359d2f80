"""Settings that point the real bot at the fake Discord and fake Spotify (tests, sandbox)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bot.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.spotify import FakeSpotify
from tests.fakes.youtube import BOT_SIDE_ADDRESS


def settings_for_fakes(
    discord: FakeDiscord, spotify: FakeSpotify, *, port: int, db_path: Path, **overrides: Any
) -> Settings:
    """Real Settings for a bot on 127.0.0.1:`port` with SQLite at `db_path`; `overrides` win."""
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        discord_token=discord.token,
        spotify_client_id=spotify.app.client_id,
        spotify_client_secret=spotify.app.client_secret,
        token_encryption_key=Fernet.generate_key().decode(),
        public_base_url=base,
        spotify_redirect_uri=f"{base}/spotify/callback",
        http_port=port,
        storage_url=f"sqlite:///{db_path}",
        discord_api_base=discord.api_base,
        discord_gateway_url=discord.gateway_url,
        discord_dev_guild_id=discord.default_guild.id,
        spotify_api_base=spotify.base,
        spotify_accounts_base=spotify.base,
        # yt-dlp and the relay connect from here, so the fake YouTube's IP binding refuses a
        # browser (on 127.0.0.1) the stream URLs the bot extracted.
        youtube_source_address=BOT_SIDE_ADDRESS,
    )
    return dataclasses.replace(settings, **overrides)

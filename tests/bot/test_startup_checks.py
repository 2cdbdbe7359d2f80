"""check_spotify (#14 review): every refusal of the app token is one StartupError line."""

from __future__ import annotations

import aiohttp
import discord
import pytest

from bot.startup import StartupError, check_spotify, start_failure, without_spotify_app
from core.spotify.client import SpotifyClient
from storage import open_storage
from storage.crypto import TokenCipher
from tests.bot.conftest import World
from tests.sync.conftest import spotify_config


@pytest.mark.parametrize("status", [403, 404])
async def test_an_unexpected_token_refusal_is_a_startup_error(world: World, status: int) -> None:
    world.spotify.fail(status, path="/api/token", times=None, message="Go away")
    store = await open_storage("sqlite:///:memory:", TokenCipher.generate())
    async with aiohttp.ClientSession() as http:
        client = SpotifyClient(spotify_config(world.spotify), store, http)
        try:
            with pytest.raises(StartupError) as raised:
                await check_spotify(world.settings, client)
        finally:
            await client.aclose()
            await store.aclose()
    assert str(raised.value).startswith("checking the Spotify app token failed: ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"presences": True, "members": True}, "Presence Intent and Server Members Intent"),
        ({"members": True}, "Server Members Intent (developer"),
    ],
)
def test_the_privileged_intents_refusal_names_what_the_bot_asked_for(
    world: World, flags: dict[str, bool], named: str
) -> None:
    intents = discord.Intents.default()
    for flag, on in flags.items():
        setattr(intents, flag, on)
    line = start_failure(discord.PrivilegedIntentsRequired(None), world.settings, intents)
    assert line is not None
    assert f"switch on {named}" in line
    assert "Message Content" not in line


@pytest.mark.parametrize(("bot", "off"), [(True, "/link"), (False, "Spotify linking")])
def test_without_the_spotify_app_the_start_says_which_keys_and_what_is_off(
    bot: bool, off: str
) -> None:
    line = without_spotify_app(bot=bot)
    assert line.startswith("SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are not set: ")
    assert off in line and "not cached yet are off" in line

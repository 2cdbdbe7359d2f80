"""End-to-end harness: the real composition root against fake Discord and fake Spotify.

`world` starts both fakes and a Settings pointing at them (SQLite in tmp_path); `world.run()`
starts Game Night exactly as `python -m bot` does (bot.__main__.running), minus the signal
handlers. Tests act only through the fakes (typing commands, clicking buttons, a browser on
the consent page) and look at what the bot sent back, what Spotify saw and what storage holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import discord
import pytest

from bot.__main__ import Running, running
from bot.settings import Settings
from tests.conftest import free_port
from tests.fakes.discord import FakeDiscord, Member, Message
from tests.fakes.spotify import FakeSpotify
from tests.fakes.wiring import settings_for_fakes
from tests.fakes.youtube import FakeYouTube
from tests.linkpage import follow_and_confirm
from tests.pwa import PWA_TRACK, add_pwa_video


@dataclass
class World:
    discord: FakeDiscord
    spotify: FakeSpotify
    settings: Settings
    db_path: Path

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Running]:
        """Start Game Night; on exit it shuts down like on SIGTERM."""
        commands_before = len(self.discord.requests("PUT"))
        async with running(self.settings, client_options={"guild_ready_timeout": 0.05}) as app:
            await self.discord.wait_ready()
            await self.discord.wait_until(
                lambda: len(self.discord.requests("PUT")) > commands_before
            )
            yield app

    @property
    def discord_origin(self) -> str:
        return f"http://127.0.0.1:{self.discord.port}"

    @property
    def callback_url(self) -> str:
        return self.settings.spotify_redirect_uri

    async def browse(self, url: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status, await response.text()

    async def link(
        self, member: Member, account_id: str, agree: bool = True, confirm: bool = True
    ) -> tuple[int, str]:
        """/link in Discord, consent on Spotify, follow the redirect to the callback page and
        (with `confirm`) press Link on our confirmation page: the page that ends it."""
        reply = await (await self.discord.slash("link", member)).reply()
        (url,) = reply.link_urls()
        redirect = await self.spotify.consent(url, account_id, agree=agree)
        if confirm:
            return await follow_and_confirm(self.callback_url, redirect)
        return await self.browse(redirect)

    def status_message(self) -> Message:
        """The newest status message in the default guild's channel."""
        found = [
            m
            for m in self.discord.channel_messages(self.discord.default_guild.text_channel_id)
            if m.buttons() or "Game night" in m.text
        ]
        found = [m for m in found if m.data.get("interaction_metadata") is None]
        assert found, "no status message was posted"
        return found[-1]


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    # The composition root points discord.py's class attributes at the fake: restore them.
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    fake_discord = await FakeDiscord().start()
    fake_spotify = await FakeSpotify().start()
    port = free_port()
    db_path = tmp_path / "gamenight.db"
    settings = settings_for_fakes(fake_discord, fake_spotify, port=port, db_path=db_path)
    try:
        yield World(fake_discord, fake_spotify, settings, db_path)
    finally:
        await fake_discord.stop()
        await fake_spotify.stop()


@pytest.fixture(autouse=True)
def _spotdl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The composition root builds spotDL, which creates ~/.spotdl: keep it out of the real home.
    monkeypatch.setenv("HOME", str(tmp_path))


VIDEO_ID = "dQw4w9WgXcQ"  # the PWA's track on the fake YouTube


@pytest.fixture
async def youtube(world: World) -> AsyncIterator[FakeYouTube]:
    """The fake YouTube with the PWA's track (YOUTUBE_BASE_URL set). Spotify knows it too: the
    resolver matches on Spotify's metadata, not the request body's."""
    world.spotify.catalog.append(PWA_TRACK)
    world.spotify.tracks[PWA_TRACK.id] = PWA_TRACK
    async with FakeYouTube() as fake:
        add_pwa_video(fake, VIDEO_ID)
        world.settings = dataclasses.replace(world.settings, youtube_base_url=fake.base_url)
        yield fake

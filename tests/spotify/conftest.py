"""Fixtures for the Spotify layer: the fake Spotify server, real SQLite storage, a real client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.services import shared_spotify
from core.spotify import SpotifyClient, SpotifyConfig
from storage import Storage, TokenCipher, open_storage
from storage.records import SpotifyLink
from tests.fakes.spotify import FakeSpotify

REDIRECT_URI = "http://127.0.0.1:9/spotify/callback"
ALICE, BOB, CAROL = 1001, 1002, 1003


def config_for(fake: FakeSpotify, **overrides: Any) -> SpotifyConfig:
    settings: dict[str, Any] = {
        "client_id": fake.app.client_id,
        "client_secret": fake.app.client_secret,
        "redirect_uri": REDIRECT_URI,
        "api_base": fake.base,
        "accounts_base": fake.base,
        "call_timeout": 3.0,
        "max_rate_wait": 5.0,
    }
    settings.update(overrides)
    return SpotifyConfig(**settings)


def client_on(
    store: Storage, http: aiohttp.ClientSession, config: SpotifyConfig, **kwargs: Any
) -> SpotifyClient:
    """A client wired as the bot wires it (bot/services.py): its budget in storage."""
    return shared_spotify(config, store, http, **kwargs)


class WallClock:
    """A wall clock that moves only when told: for the fake's player timing and the client's
    holds, so a test about "0.3 s of read lag" does not depend on how loaded the machine is."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def clocked(clock: WallClock) -> AsyncIterator[FakeSpotify]:
    """The fake Spotify on `clock` (its players, read lag, tokens and quota)."""
    async with FakeSpotify(clock=clock) as server:
        server.add_account("alice", "Alice")
        yield server


@pytest.fixture
async def clocked_client(
    clocked: FakeSpotify, clock: WallClock, links: Storage, http: aiohttp.ClientSession
) -> AsyncIterator[SpotifyClient]:
    spotify = client_on(links, http, config_for(clocked), clock=clock)
    yield spotify
    await spotify.aclose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSpotify]:
    async with FakeSpotify() as server:
        server.add_account("alice", "Alice")
        server.add_account("bob", "Bob", premium=False)
        server.add_account("carol", "Carol", active=False)
        yield server


@pytest.fixture
async def links(tmp_path: Path) -> AsyncIterator[Storage]:
    """Where links and OAuth states live: the real SQLite backend."""
    store = await open_storage(f"sqlite:///{tmp_path}/gamenight.db", TokenCipher.generate())
    yield store
    await store.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def client(
    fake: FakeSpotify, links: Storage, http: aiohttp.ClientSession
) -> AsyncIterator[SpotifyClient]:
    spotify = client_on(links, http, config_for(fake))
    yield spotify
    await spotify.aclose()


async def link(
    links: Storage,
    fake: FakeSpotify,
    user_id: int,
    account_id: str,
    expires_at: float | None = None,
) -> SpotifyLink:
    """Store a link for `account_id` as if the user had gone through /link."""
    tokens = fake.issue_tokens(account_id)
    stored = SpotifyLink(
        discord_user_id=user_id,
        spotify_user_id=account_id,
        display_name=account_id.title(),
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at if expires_at is None else expires_at,
        scopes=tokens.scopes,
        linked_at=time.time(),
    )
    await links.put_link(stored)
    return stored

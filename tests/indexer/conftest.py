"""Indexer test world: fake Spotify (playlists, accounts), fake YouTube, real SQLite storage.

The catalog is built so that the real spotDL matching has exactly one right answer per track
(each title is one word no other track shares, and its ISRC is on the video), plus one track
YouTube has nothing for.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import storage
from bot.index_cli import index
from storage.base import Storage
from storage.crypto import TokenCipher
from storage.records import SpotifyLink
from tests.fakes.spotify import FakeSpotify
from tests.fakes.spotify_catalog import FakeTrack, make_id
from tests.fakes.youtube import FakeYouTube

TRACK_COUNT = 110  # more than one page of playlist items (Spotify pages them by 100)
ALICE, BOB = 4242, 5151  # Discord user ids; alice links Spotify, bob never does


def make_tracks(count: int = TRACK_COUNT) -> list[FakeTrack]:
    rng = random.Random(11)
    tracks = []
    for n in range(count):
        artist = ("Loopback", "Port Zero", "Null Device")[n % 3]
        tracks.append(
            FakeTrack(
                id=make_id(rng),
                name=f"Tune{n:03d}",
                artists=(artist,),
                album=f"Album{n // 10:02d}",
                duration_ms=150_000 + 1000 * n,
                isrc=f"QZIDX26{n:05d}",
                album_id=make_id(rng),
                artist_ids=(make_id(rng),),
            )
        )
    return tracks


TRACKS = make_tracks()
UNFINDABLE = FakeTrack(
    id="0unfindab1e0unfindab1e",
    name="Unfindable Ghost",
    artists=("Nobody Knows",),
    album="Void",
    duration_ms=200_000,
    isrc="QZIDX2699999",
    album_id="0unfindab1e0album00000",
    artist_ids=("0unfindab1e0artist0000",),
)


@dataclass
class World:
    spotify: FakeSpotify
    youtube: FakeYouTube
    store: Storage
    env: dict[str, str]

    async def index(
        self, *argv: str, stop: asyncio.Event | None = None, out: io.StringIO | None = None
    ) -> tuple[int, str, str]:
        """The CLI in-process (`python -m bot index ARGV`); (exit status, stdout, stderr)."""
        stdout, stderr = out or io.StringIO(), io.StringIO()
        status = await index(
            list(argv),
            environ=self.env,
            dotenv_path=None,
            stdout=stdout,
            stderr=stderr,
            stop=stop,
            ytmusic_client_factory=self.youtube.ytmusic_client,
        )
        return status, stdout.getvalue(), stderr.getvalue()

    async def link(self, discord_user_id: int, account_id: str) -> None:
        """Store a link as /link would have."""
        tokens = self.spotify.issue_tokens(account_id)
        await self.store.put_link(
            SpotifyLink(
                discord_user_id=discord_user_id,
                spotify_user_id=account_id,
                display_name=account_id.title(),
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                expires_at=tokens.expires_at,
                scopes=tokens.scopes,
                linked_at=time.time(),
            )
        )


def environment(spotify: FakeSpotify, youtube: FakeYouTube, db: Path, key: str) -> dict[str, str]:
    """What an operator would put in .env for the indexer: no DISCORD_TOKEN."""
    return {
        "SPOTIFY_CLIENT_ID": spotify.app.client_id,
        "SPOTIFY_CLIENT_SECRET": spotify.app.client_secret,
        "SPOTIFY_API_BASE": spotify.base,
        "SPOTIFY_ACCOUNTS_BASE": spotify.base,
        "TOKEN_ENCRYPTION_KEY": key,
        "STORAGE_URL": f"sqlite:///{db}",
        "YOUTUBE_BASE_URL": youtube.base_url,
    }


def stock(youtube: FakeYouTube, tracks: list[FakeTrack]) -> None:
    for n, track in enumerate(tracks):
        youtube.add_video(
            f"vid{n:08d}",
            track.name,
            track.artists,
            round(track.duration_ms / 1000),
            album=track.album,
            isrc=track.isrc,
        )


@pytest.fixture(autouse=True)
def _quiet_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # spotDL creates ~/.config/spotdl/temp when its providers are built.
    monkeypatch.setenv("HOME", str(tmp_path))
    # rich takes any FORCE_COLOR (some CI runners set it) as "this is a terminal".
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    key = Fernet.generate_key().decode()
    db = tmp_path / "gamenight.db"
    async with FakeSpotify(catalog=[*TRACKS, UNFINDABLE]) as spotify, FakeYouTube() as youtube:
        spotify.add_account("alice", "Alice")
        stock(youtube, TRACKS)
        store = await storage.open_storage(f"sqlite:///{db}", TokenCipher.from_keys(key))
        try:
            world = World(spotify, youtube, store, environment(spotify, youtube, db, key))
            # Development mode reads a playlist only with its owner's (or a collaborator's)
            # token: alice has linked, so tests can pass --as ALICE.
            await world.link(ALICE, "alice")
            yield world
        finally:
            await store.aclose()


async def wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition did not become true in time")
        await asyncio.sleep(0.01)


def ids(tracks: list[FakeTrack]) -> list[str]:
    return [t.id for t in tracks]

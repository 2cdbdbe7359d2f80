"""A sync engine wired to the REAL client stack: SpotifyClient, spotipy, the fake Spotify server,
and real storage. Shared by the engine tests and the sync benchmarks.

`Rig` links fake accounts to discord user ids in storage (tokens as if they had run /link),
stores a session, and builds engines exactly as the composition root does (shared client,
storage as the lease store, the client's limiter as the app-wide hold).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from core.spotify.client import SpotifyClient
from core.sync.clock import Clock
from core.sync.engine import EngineConfig, SyncEngine
from core.sync.health import SyncHealth
from core.sync.reporter import PlaybackReport
from storage.base import Storage
from storage.records import ListenerState, Session, SpotifyLink
from tests.fakes.spotify import FakeSpotify
from tests.fakes.spotify_catalog import FakeDevice, FakePlayer


class RecordedEvents:
    """An `Announcer` that remembers what the engine reported (the bot's side is tested in
    tests/bot/test_gamenight_sync.py against the fake Discord)."""

    def __init__(self) -> None:
        self.statuses: list[PlaybackReport] = []
        self.notices: list[tuple[int, str]] = []
        self.ended: list[tuple[int, str]] = []
        self.gone: list[int] = []

    async def status_changed(self, report: PlaybackReport) -> None:
        self.statuses.append(report)

    async def notify_user(self, guild_id: int, user_id: int, message: str) -> None:
        self.notices.append((user_id, message))

    async def session_ended(self, guild_id: int, reason: str) -> None:
        self.ended.append((guild_id, reason))

    async def session_gone(self, guild_id: int) -> None:
        self.gone.append(guild_id)


@dataclass
class Rig:
    fake: FakeSpotify
    store: Storage
    client: SpotifyClient
    config: EngineConfig = field(default_factory=EngineConfig)
    events: RecordedEvents = field(default_factory=RecordedEvents)
    accounts: dict[int, str] = field(default_factory=dict)  # discord user id -> fake account
    engines: list[SyncEngine] = field(default_factory=list)

    async def link(
        self,
        user_id: int,
        account: str,
        *,
        premium: bool = True,
        devices: list[FakeDevice] | None = None,
        active: bool = True,
    ) -> None:
        """A fake Spotify account, linked to `user_id` as if they had run /link."""
        self.fake.add_account(account, premium=premium, devices=devices, active=active)
        tokens = self.fake.issue_tokens(account)
        await self.store.put_link(
            SpotifyLink(
                user_id,
                account,
                account.title(),
                tokens.access_token,
                tokens.refresh_token,
                tokens.expires_at,
                tokens.scopes,
                time.time(),
            )
        )
        self.accounts[user_id] = account

    async def session(self, guild_id: int, host: int, listeners: Iterable[int]) -> None:
        now = time.time()
        states = {uid: ListenerState(uid, joined_at=now, updated_at=now) for uid in listeners}
        created = await self.store.create_session(
            Session(guild_id, host, now, host_active_at=now, listeners=states)
        )
        assert created

    def engine(
        self,
        guild_id: int,
        *,
        store: Storage | None = None,
        holder: str = "rig",
        clock: Clock | None = None,
        health: SyncHealth | None = None,
        **overrides: object,
    ) -> SyncEngine:
        """An engine like the composition root builds (closed by the test fixture)."""
        store = store or self.store
        engine = SyncEngine(
            guild_id,
            client=self.client,
            sessions=store,
            announcer=self.events,
            config=replace(self.config, **overrides),  # type: ignore[arg-type]  # knobs by name
            leases=store,
            holder=holder,
            hold=lambda: self.client.blocked_for,
            clock=clock,
            health=health,
        )
        self.engines.append(engine)
        return engine

    def player(self, user_id: int) -> FakePlayer:
        return self.fake.player(self.accounts[user_id])

    def skew_ms(self, host: int, listener: int) -> int:
        """Host vs listener position right now, from the fake's player clocks."""
        a, b = self.player(host).now(), self.player(listener).now()
        return abs(a.position_ms - b.position_ms)

    def same(self, host: int, listener: int) -> bool:
        a, b = self.player(host).now(), self.player(listener).now()
        return (a.track_id, a.is_playing) == (b.track_id, b.is_playing)

    def in_sync(self, host: int, listener: int, tolerance_ms: int = 300) -> bool:
        return self.same(host, listener) and self.skew_ms(host, listener) <= tolerance_ms

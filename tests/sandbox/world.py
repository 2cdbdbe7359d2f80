"""The sandbox's world: the three fakes, the people at the game night, and the real bot.

`Sandbox.open(options)` starts fake Discord, fake Spotify and fake YouTube on 127.0.0.1, then
Game Night itself through its real composition root (`bot.__main__.running`) with a Settings
that points every upstream at the fakes and keeps SQLite in a temporary folder. Nothing here
drives the bot from the inside: people act through Discord (slash commands), the Spotify
consent page, and their own Spotify player (the fake's simulated player, which is what the
host's or a listener's Spotify app would change).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bot.__main__ import Running, running
from bot.settings import Settings
from storage.records import ListenerStatus, Session
from tests.fakes.discord import FakeDiscord, Member, Message
from tests.fakes.spotify import FakeSpotify
from tests.fakes.spotify_catalog import PlayerSnapshot
from tests.fakes.wiring import settings_for_fakes
from tests.fakes.youtube import FakeYouTube
from tests.linkpage import follow_and_confirm
from tests.redis_proc import free_port
from tests.sandbox.render import render

NAMES = ("kim", "lee", "mo", "noor", "oli", "pia", "quinn", "rae", "sam", "tess", "uma", "vic")


class Kind(StrEnum):
    """How a person's Spotify account is set up; it decides what the bot can do for them."""

    HOST = "host"
    PREMIUM = "Premium"
    INACTIVE = "Premium, no active device"  # the bot must pick their device
    FREE = "no Premium"  # the bot cannot command their player: it flags them


@dataclass(frozen=True)
class Options:
    listeners: int = 4
    latency_ms: float = 60.0  # injected Spotify round trip (mean)
    jitter_ms: float | None = None  # default: a quarter of the latency
    poll_interval_s: float = 1.0  # SYNC_POLL_INTERVAL
    drift_check_s: float = 5.0  # SYNC_DRIFT_CHECK_INTERVAL
    timeout_s: float | None = None  # how long a listener may take to follow; None: derived
    http_port: int | None = None  # the bot's HTTP server; None: a free port
    break_follower: bool = False  # the first follower's Spotify refuses every command

    @property
    def jitter(self) -> float:
        return self.latency_ms / 4 if self.jitter_ms is None else self.jitter_ms

    @property
    def follow_timeout_s(self) -> float:
        """Long enough for the slowest path: a resume seen by the 3 s paused polling."""
        if self.timeout_s is not None:
            return self.timeout_s
        return 4.0 + 2 * self.poll_interval_s + 6 * (self.latency_ms + self.jitter) / 1000

    @property
    def notice_timeout_s(self) -> float:
        """How long the bot may take to notice a listener who wandered off."""
        return self.drift_check_s + self.follow_timeout_s


@dataclass
class Person:
    name: str
    kind: Kind
    member: Member
    account: str  # their fake Spotify account id

    @property
    def follows(self) -> bool:
        """Whether the bot can (and so must) keep their player with the host's."""
        return self.kind in (Kind.PREMIUM, Kind.INACTIVE)


def kinds(listeners: int) -> list[Kind]:
    """Mostly Premium, then one without an active device and one without Premium."""
    special = [Kind.INACTIVE, Kind.FREE][: max(0, listeners - 1)]
    return [Kind.PREMIUM] * (listeners - len(special)) + special


@dataclass
class Sandbox:
    options: Options
    discord: FakeDiscord
    spotify: FakeSpotify
    youtube: FakeYouTube
    settings: Settings
    app: Running
    host: Person
    listeners: list[Person]
    queue: list[str]  # the host's tracks, in order
    started_at: float

    @classmethod
    @asynccontextmanager
    async def open(cls, options: Options) -> AsyncIterator[Sandbox]:
        async with AsyncExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gamenight-")))
            discord = await FakeDiscord().start()
            stack.push_async_callback(discord.stop)
            spotify = await FakeSpotify().start()
            stack.push_async_callback(spotify.stop)
            youtube = FakeYouTube()
            await youtube.start()
            stack.push_async_callback(youtube.aclose)
            for track in spotify.catalog:  # a video for every track, found by ISRC or name
                youtube.add_video(
                    track.id[:11],
                    track.name,
                    track.artists,
                    track.duration_ms // 1000,
                    album=track.album,
                    isrc=track.isrc,
                )

            host = cls._person(discord, spotify, "hana", Kind.HOST)
            listeners = [
                cls._person(discord, spotify, f"{NAMES[n % len(NAMES)]}{n // len(NAMES) or ''}", k)
                for n, k in enumerate(kinds(options.listeners))
            ]
            spotify.set_latency(options.latency_ms / 1000, options.jitter / 1000)
            if options.break_follower:
                victim = next(p for p in listeners if p.follows)
                spotify.fail(
                    503, method="PUT", path="/v1/me/player/play", account=victim.account, times=None
                )

            settings = sandbox_settings(discord, spotify, youtube, folder, options)
            # spotDL keeps its files in ~/.spotdl: this process's home is the temporary folder.
            os.environ["HOME"] = str(folder)
            app = await stack.enter_async_context(
                running(
                    settings,
                    client_options={"guild_ready_timeout": 0.05},
                    ytmusic_client_factory=youtube.ytmusic_client,
                )
            )
            await discord.wait_ready()
            await discord.wait_until(lambda: bool(discord.guild_commands), within=10)
            queue = [t.id for t in spotify.catalog[:6]]
            yield cls(
                options,
                discord,
                spotify,
                youtube,
                settings,
                app,
                host,
                listeners,
                queue,
                time.monotonic(),
            )

    @staticmethod
    def _person(discord: FakeDiscord, spotify: FakeSpotify, name: str, kind: Kind) -> Person:
        account = f"{name}-sp"
        spotify.add_account(
            account, name.title(), premium=kind is not Kind.FREE, active=kind is not Kind.INACTIVE
        )
        member = discord.add_member(name)
        # Everyone shows Spotify as their Discord status (the default): the bot hears of the
        # host's changes through presence, as it would for real (tests/fakes/discord_presence.py).
        discord.presence.share(member, spotify.player(account))
        return Person(name, kind, member, account)

    # --- what people do --------------------------------------------------------------------

    @property
    def everyone(self) -> list[Person]:
        return [self.host, *self.listeners]

    @property
    def followers(self) -> list[Person]:
        return [p for p in self.listeners if p.follows]

    @property
    def guild_id(self) -> int:
        return self.discord.default_guild.id

    def player(self, person: Person) -> PlayerSnapshot:
        return self.spotify.player(person.account).now()

    async def say(self, command: str, person: Person, **options: Any) -> str:
        """Type a slash command in Discord as `person`; the bot's answer as Discord shows it
        (names for mentions, no markup, link buttons as `[label](url)`)."""
        reply = await (await self.discord.slash(command, person.member, **options)).reply()
        return render(reply, self.names())

    def names(self) -> dict[int, str]:
        """Every member's name by user id, for rendering mentions."""
        return {
            uid: member.name
            for guild in self.discord.guilds.values()
            for uid, member in guild.members.items()
        }

    async def link_url(self, person: Person) -> str:
        """/link as `person`: the private authorize URL the bot answers with."""
        reply = await (await self.discord.slash("link", person.member)).reply()
        (url,) = reply.link_urls()
        return url

    async def link(self, person: Person) -> tuple[int, str]:
        """The whole /link flow: the bot's URL, Agree on the consent page, the bot's callback
        and Link on its confirmation page."""
        redirect = await self.spotify.consent(await self.link_url(person), person.account)
        return await follow_and_confirm(self.settings.spotify_redirect_uri, redirect)

    def dms(self, person: Person) -> list[Message]:
        return self.discord.dms(person.member)

    # --- what the bot knows ----------------------------------------------------------------

    async def session(self) -> Session | None:
        return await self.app.services.storage.get_session(self.guild_id)

    async def statuses(self) -> dict[str, str]:
        """Each listener's status as the bot's session holds it (absent: not in the session)."""
        session = await self.session()
        if session is None:
            return {}
        by_id = {p.member.user_id: p.name for p in self.listeners}
        return {
            by_id[uid]: str(state.status)
            for uid, state in session.listeners.items()
            if uid in by_id
        }

    @property
    def http_base(self) -> str:
        return self.settings.public_base_url

    def track_name(self, track_id: str | None) -> str:
        return "—" if track_id is None else self.spotify.tracks[track_id].name

    def duration_ms(self, track_id: str) -> int:
        return self.spotify.tracks[track_id].duration_ms


def sandbox_settings(
    discord: FakeDiscord,
    spotify: FakeSpotify,
    youtube: FakeYouTube,
    folder: Path,
    options: Options,
) -> Settings:
    return settings_for_fakes(
        discord,
        spotify,
        port=options.http_port or free_port(),
        db_path=folder / "gamenight.db",
        youtube_base_url=youtube.base_url,
        sync_poll_interval_s=options.poll_interval_s,
        sync_drift_check_interval_s=options.drift_check_s,
    )


ATTACHED = str(ListenerStatus.ATTACHED)
DETACHED = str(ListenerStatus.DETACHED)
PREMIUM_REQUIRED = str(ListenerStatus.PREMIUM_REQUIRED)

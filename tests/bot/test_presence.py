"""Discord presence as the host's push signal, end to end: the real bot (discord.py, spotipy)
against the fake Discord, whose PRESENCE_UPDATEs follow the fake Spotify players.

Presence moves the listeners long before any poll would (the safety poll is minutes apart), and
the host's player is read at most once per change; without presence (hidden, or the intents
refused with 4014) the engine polls at the budget's pace; under quota pressure it acts on the
presence alone; during a QUOTA_EXCEEDED hold the listen page's snapshot follows the presence.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from bot.__main__ import Running
from bot.client import ShardedGameNightBot
from core.errors import RateLimited
from core.presence import Presence
from core.spotify.quota import CallPriority, QuotaGovernor
from tests.bot.conftest import World
from tests.bot.test_gamenight import linked, say
from tests.bot.test_gamenight_sync import until
from tests.fakes.discord import Member

HOST, KIM = "hana-sp", "kim-sp"


def host_reads(world: World) -> int:
    return world.spotify.count(path="/v1/me/player", account=HOST, method="GET")


def close(world: World, account: str, *, playing: bool = True, within_ms: int = 700) -> bool:
    host, other = world.spotify.player(HOST).now(), world.spotify.player(account).now()
    return (
        other.track_id == host.track_id
        and other.is_playing == playing
        and (not playing or abs(host.position_ms - other.position_ms) < within_ms)
    )


def sent_for(world: World, member: Member) -> list[dict[str, object]]:
    return [d for d in world.discord.presence.sent if d["user"]["id"] == str(member.user_id)]


async def game_night(
    world: World, app: Running, *, share: bool = True, budget: int = 100_000
) -> tuple[Member, Member]:
    world.discord.presence.delay_s, world.discord.presence.jitter_s = 0.3, 0.2
    # Roomy budget: the paced poll without presence is its 2 s floor, so the test is quick.
    app.services.spotify.quota = QuotaGovernor(budget)
    host = await linked(world, "hana")
    kim = await linked(world, "kim")
    queue = [t.id for t in world.spotify.catalog[:5]]
    world.spotify.player(HOST).load(queue, position_ms=30_000)
    if share:
        world.discord.presence.share(host, world.spotify.player(HOST))
    else:
        world.discord.presence.hide(host)
    await say(world, "gamenight start", host)
    await say(world, "gamenight join", kim)
    await until(lambda: close(world, KIM))
    return host, kim


async def test_presence_drives_skip_seek_pause_and_resume(world: World) -> None:
    second = world.discord.add_guild("Second server", owner=world.discord.owner)
    async with world.run() as app:
        member, _ = await game_night(world, app)
        second.members[member.user_id] = member  # Discord sends each update once per guild
        updates: list[Presence] = []
        app.services.presence.subscribe(
            lambda p: updates.append(p) if p.user_id == member.user_id else None
        )
        host = world.spotify.player(HOST)
        await until(lambda: app.services.presence.available)
        quiet = host_reads(world)
        await asyncio.sleep(3)
        assert host_reads(world) == quiet  # no polling between changes
        updates.clear()
        sent_before = len(sent_for(world, member))
        for act in ("next", "seek", "pause", "resume"):
            before = host_reads(world)
            match act:
                case "next":
                    host.next()
                case "seek":
                    host.seek(host.now().position_ms + 60_000)
                case "pause":
                    host.pause()
                case "resume":
                    host.resume()
            # The presence (0.3-0.5 s late) wakes the engine: well within the 2 minute
            # safety poll, and with one read of the host (the confirmation) per change.
            playing = act != "pause"
            await until(lambda: close(world, KIM, playing=playing), within=4)  # noqa: B023
            assert host_reads(world) - before <= 2, act
        await asyncio.sleep(1)  # any late duplicate
        sent = len(sent_for(world, member)) - sent_before
        assert sent == 2 * len(updates) == 8  # two guilds, one board update per change


async def test_a_host_without_presence_is_polled_at_the_budgets_pace(world: World) -> None:
    async with world.run() as app:
        await game_night(world, app, share=False)
        world.spotify.player(HOST).next()
        await until(lambda: close(world, KIM), within=6)  # the 2 s paced poll found it


async def test_refused_intents_fall_back_to_polling_and_say_so_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.discord.presence.portal = 0  # nothing ticked in the developer portal
    caplog.set_level(logging.WARNING, logger="bot.client")
    async with world.run() as app:
        assert world.discord.presence.refused == 1
        assert not app.bot.intents.presences and not app.bot.intents.members
        host, _ = await game_night(world, app)
        assert not app.services.presence.available
        world.spotify.player(HOST).next()
        await until(lambda: close(world, KIM), within=6)
        status = await say(world, "gamenight status", host)
        assert "Discord presence is off" in status and "developer portal" in status
        await world.discord.request_reconnect()
    said = [r for r in caplog.records if "Discord presence is off" in r.getMessage()]
    assert len(said) == 1
    assert all(r.levelno == logging.WARNING for r in said)


async def test_a_sharded_bot_refused_the_intents_reconnects_every_shard_without_them(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # AutoShardedClient closes itself on 4014; ours drops the refused shards and identifies
    # them again without the intents (bot/client.py, ShardedGameNightBot).
    world.discord.presence.portal = 0
    world.settings = replace(world.settings, discord_shard_count=2)
    caplog.set_level(logging.WARNING, logger="bot.client")
    async with world.run() as app:
        assert isinstance(app.bot, ShardedGameNightBot)
        assert world.discord.presence.refused >= 1
        assert not app.bot.intents.presences and not app.bot.intents.members
        assert not app.bot.is_closed()
        await until(lambda: len(app.bot.shards) == 2 and all(
            not s.is_closed() for s in app.bot.shards.values()
        ))  # fmt: skip
        host, _ = await game_night(world, app)
        assert not app.services.presence.available
        status = await say(world, "gamenight status", host)
        assert "Discord presence is off" in status
    said = [r for r in caplog.records if "Discord presence is off" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING


async def test_switched_off_intents_are_not_requested(world: World) -> None:
    world.settings = replace(world.settings, discord_presence_intent=False)
    async with world.run() as app:
        assert world.discord.presence.refused == 0
        assert not app.bot.intents.presences


async def test_under_pressure_the_engine_acts_on_presence_alone(world: World) -> None:
    async with world.run() as app:
        await game_night(world, app, budget=300)
        await until(lambda: app.services.presence.available)
        governor = app.services.spotify.quota
        while governor.pressure() < 0.95:  # presence only
            await governor.admit(CallPriority.COMMAND)
        assert not governor.allows(CallPriority.SAFETY)
        before = host_reads(world)
        world.spotify.player(HOST).next()
        await until(lambda: close(world, KIM), within=4)
        assert host_reads(world) == before  # no confirmation read: the presence was enough


async def test_during_a_quota_hold_the_listen_snapshot_follows_presence(world: World) -> None:
    async with world.run() as app:
        _, kim = await game_night(world, app)
        await until(lambda: app.services.presence.available)
        guild = world.discord.default_guild.id
        world.spotify.fail(429, quota=True, retry_after=3600, times=None)
        with pytest.raises(RateLimited):  # any call of the app (here a player read) meets it
            await app.services.spotify.playback(kim.user_id)
        assert app.services.spotify.blocked_for > 3000  # the quota hold
        calls = len(world.spotify.log)
        world.spotify.player(HOST).next()
        new = world.spotify.player(HOST).now().track_id

        async def snapshot_track() -> str | None:
            session = await app.services.storage.get_session(guild)
            return session.snapshot.track_id if session and session.snapshot else None

        for _ in range(50):
            if await snapshot_track() == new:
                break
            await asyncio.sleep(0.1)
        assert await snapshot_track() == new
        assert len(world.spotify.log) == calls  # not one Spotify call during the hold
        info = await app.services.listen.listen.track_info(new)  # Spotify refuses: presence
        assert info is not None and info.name == world.spotify.tracks[new].name

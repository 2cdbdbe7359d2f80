"""The sync engine through the bot: /gamenight start runs it, the status message shows each
listener's state, users who must act get a DM, a restart resumes it, /gamenight stop ends it.

All through the real composition root against the fake Discord and the fake Spotify.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.bot.conftest import World
from tests.bot.test_gamenight import linked, say
from tests.fakes.discord import Member


async def until(check: Callable[[], object], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "Game Night did not get there in time"
        await asyncio.sleep(0.05)


async def test_a_game_night_keeps_listeners_in_sync_until_stopped(world: World) -> None:
    spotify = world.spotify
    queue = [t.id for t in spotify.catalog[:4]]
    host_player = spotify.player

    def following(account: str, index: int) -> bool:
        host, other = host_player("hana-sp").now(), host_player(account).now()
        return (
            other.track_id == queue[index]
            and other.is_playing
            and abs(host.position_ms - other.position_ms) < 500
        )

    async with world.run():
        host = await linked(world, "hana")
        kim = await linked(world, "kim")
        spotify.add_account("pat-sp", "Pat", premium=False)
        pat = world.discord.add_member("pat")
        assert (await world.link(pat, "pat-sp"))[0] == 200
        host_player("hana-sp").load(queue, position_ms=30_000)

        await say(world, "gamenight start", host)
        board = world.status_message()
        await say(world, "gamenight join", kim)
        await until(lambda: following("kim-sp", 0))
        now_playing = spotify.tracks[queue[0]].name
        await until(lambda: now_playing in world.discord.message(board.id).text)
        assert "▶️ Playing" in world.discord.message(board.id).text

        await say(world, "gamenight join", pat)
        premium_line = f"<@{pat.user_id}> — 🔒 needs Spotify Premium"
        await until(lambda: premium_line in world.discord.message(board.id).text)
        assert f"<@{kim.user_id}> — 🟢 in sync" in world.discord.message(board.id).text
        await until(lambda: premium_dms(world, pat))

    # The process stops; the host skips meanwhile; a new process resumes the game night.
    host_player("hana-sp").next()
    async with world.run():
        await until(lambda: following("kim-sp", 1), within=8)
        await say(world, "gamenight stop", host)
        assert "over" in world.discord.message(board.id).text
        host_player("hana-sp").next()
        await asyncio.sleep(2.5)  # more than two poll intervals: a loop would have acted
        assert host_player("kim-sp").now().track_id == queue[1]
    assert len(premium_dms(world, pat)) == 1  # told once, across the restart too


def premium_dms(world: World, member: Member) -> list[str]:
    return [m.text for m in world.discord.dms(member) if "Premium" in m.text]


def device_dms(world: World, member: Member) -> list[str]:
    return [m.text for m in world.discord.dms(member) if "open Spotify" in m.text]


async def test_a_resync_while_the_host_is_paused_pauses_a_listener_on_their_own_track(
    world: World,
) -> None:
    spotify = world.spotify
    queue = [t.id for t in spotify.catalog[:4]]
    player = spotify.player
    async with world.run():
        host = await linked(world, "hana")
        kim = await linked(world, "kim")
        player("hana-sp").load(queue, position_ms=30_000)
        # The host shows Spotify on Discord: the pause reaches the engine by presence (without
        # it, the default budget's paced poll would take ~11 s to see it).
        world.discord.presence.share(host, player("hana-sp"))
        await say(world, "gamenight start", host)
        board = world.status_message()
        await say(world, "gamenight join", kim)
        await until(lambda: player("kim-sp").now().track_id == queue[0])
        player("hana-sp").pause()
        await until(lambda: not player("kim-sp").is_playing)
        # Kim plays her own thing; paused hosts are rarely checked, so she still shows in sync.
        player("kim-sp").load([queue[3]], position_ms=1_000)
        await asyncio.sleep(1)

        assert "Re-syncing 1 listener" in await say(world, "gamenight resync", host)
        await until(lambda: not player("kim-sp").is_playing)  # paused, like the host
        in_sync = f"<@{kim.user_id}> — 🟢 in sync"
        await until(lambda: in_sync in world.discord.message(board.id).text)


async def test_a_host_resync_tells_nobody_twice_and_shows_nobody_falsely_in_sync(
    world: World,
) -> None:
    spotify = world.spotify
    queue = [t.id for t in spotify.catalog[:4]]
    async with world.run():
        host = await linked(world, "hana")
        spotify.add_account("pat-sp", "Pat", premium=False)
        pat = world.discord.add_member("pat")
        assert (await world.link(pat, "pat-sp"))[0] == 200
        spotify.add_account("noa-sp", "Noa", active=False, devices=[])
        noa = world.discord.add_member("noa")
        assert (await world.link(noa, "noa-sp"))[0] == 200
        spotify.player("hana-sp").load(queue, position_ms=30_000)
        await say(world, "gamenight start", host)
        board = world.status_message()
        await say(world, "gamenight join", pat)
        await say(world, "gamenight join", noa)
        await until(lambda: premium_dms(world, pat) and device_dms(world, noa))
        seen: list[str] = []
        for _ in range(4):
            await say(world, "gamenight resync", host)
            for _ in range(10):  # what the status message shows meanwhile
                seen.append(world.discord.message(board.id).text)
                await asyncio.sleep(0.1)
    assert len(premium_dms(world, pat)) == 1
    assert len(device_dms(world, noa)) == 1
    assert not any(f"<@{pat.user_id}> — 🟢" in text for text in seen)
    assert not any(f"<@{noa.user_id}> — 🟢" in text for text in seen)


async def test_only_the_start_posts_a_status_message(world: World) -> None:
    """A sync round's first report racing the start's own post (seen with a slow Discord)
    must not post a second message with live buttons."""
    channel = world.discord.default_guild.text_channel_id
    async with world.run() as app:
        host = await linked(world, "hana")
        board = app.bot.board
        assert board is not None
        guild = world.discord.default_guild.id
        session = await app.services.sessions.start(guild, host.user_id, channel)
        posted = len(world.discord.channel_messages(channel))
        # The engine's report arrives before the start's post went out:
        await asyncio.gather(*(board.refresh(session) for _ in range(3)))
        assert len(world.discord.channel_messages(channel)) == posted  # nothing to edit yet
        messageable = app.bot.get_partial_messageable(channel)
        await asyncio.gather(board.post(session, messageable), board.refresh(session))
        await asyncio.sleep(0.3)
        assert len(world.discord.channel_messages(channel)) == posted + 1


async def test_a_late_refresh_never_brings_an_ended_status_message_back(world: World) -> None:
    """A refresh under way when the session ends (the engine's report, the audience count)
    holds the session as it was: it must not put live Join/Leave buttons back over "over",
    nor post a new live message."""
    channel = world.discord.default_guild.text_channel_id
    async with world.run() as app:
        host = await linked(world, "hana")
        board = app.bot.board
        assert board is not None
        guild = world.discord.default_guild.id
        session = await app.services.sessions.start(guild, host.user_id, channel)
        await board.post(session, app.bot.get_partial_messageable(channel))
        posted = await app.services.sessions.find(guild)  # as a refresh under way holds it
        assert posted is not None and posted.status_message_id is not None
        ended = await app.services.sessions.end(guild, "idle")
        assert ended is not None
        await board.refresh(posted)  # late, with the session as it was before the end
        await board.show_playback(guild, None, True)
        messages = [m for m in world.discord.channel_messages(channel) if m.embeds]
        assert len(messages) == 1
        assert "over" in messages[0].embeds[0]["title"]
        assert not messages[0].data.get("components")

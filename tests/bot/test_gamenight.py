"""/gamenight end to end: the session rules, the status message and its buttons, restarts."""

from __future__ import annotations

import re

import pytest

from core.errors import STORAGE_DOWN
from tests.bot.conftest import World
from tests.fakes.discord import Member


async def linked(world: World, name: str, *, manage_guild: bool = False) -> Member:
    world.spotify.add_account(f"{name}-sp", name.title())
    member = world.discord.add_member(name, manage_guild=manage_guild)
    status, _ = await world.link(member, f"{name}-sp")
    assert status == 200
    return member


async def say(world: World, command: str, member: Member, /, **options: object) -> str:
    """Run a slash command; its (ephemeral) answer's text."""
    reply = await (await world.discord.slash(command, member, **options)).reply()
    assert reply.ephemeral, f"/{command} answered in public: {reply.text}"
    return reply.text


async def test_session_lifecycle_and_refusals(world: World) -> None:
    stranger = world.discord.add_member("stranger")
    async with world.run() as app:
        guild = world.discord.default_guild.id
        # Nothing running yet.
        for sub in ("join", "leave", "stop", "status", "resync"):
            assert "no game night running" in await say(world, f"gamenight {sub}", stranger)
        # The host must be linked.
        assert "link Spotify before you can host" in await say(world, "gamenight start", stranger)
        assert await app.services.storage.get_session(guild) is None

        host = await linked(world, "hana")
        kim = await linked(world, "kim")
        started = await say(world, "gamenight start", host)
        assert "you're the host" in started
        board = world.status_message()
        assert set(board.buttons()) == {"gamenight:join", "gamenight:leave"}
        assert f"<@{host.user_id}>" in board.text
        assert "Nobody yet" in board.text
        session = await app.services.storage.get_session(guild)
        assert session is not None
        assert (session.host_user_id, session.status_message_id) == (host.user_id, board.id)

        # One session per guild.
        assert "already running" in await say(world, "gamenight start", kim)
        # Joining needs a link; the host doesn't join their own session.
        assert "link Spotify before you can listen" in await say(world, "gamenight join", stranger)
        assert "You're the host" in await say(world, "gamenight join", host)

        assert "You're in" in await say(world, "gamenight join", kim)
        assert f"<@{kim.user_id}> — 🟢 in sync" in world.discord.message(board.id).text
        assert "already listening" in await say(world, "gamenight join", kim)

        def calls() -> int:  # every Spotify call the fake saw (the sync loop keeps calling)
            return world.spotify.count("/v1/") + world.spotify.count("/api/token")

        before = calls()
        status = await say(world, "gamenight status", stranger)
        assert f"<@{kim.user_id}>" in status
        assert "Listeners (1)" in status
        # The Spotify budget, counted in storage across every call made so far (a sync call
        # may be counted and still on its way to the fake: 2 of slack).
        shown = re.search(r"Spotify calls today: (\d+) of 1,200", status)
        assert shown is not None and before <= int(shown[1]) <= calls() + 2
        before = calls()
        code, metrics = await world.browse(f"http://127.0.0.1:{world.settings.http_port}/metrics")
        spent = re.search(r"^gamenight_spotify_calls_spent ([\d.]+)$", metrics, re.M)
        left = re.search(r"^gamenight_spotify_calls_left ([\d.]+)$", metrics, re.M)
        assert code == 200 and spent is not None and left is not None
        assert before - 2 <= float(spent[1]) <= calls() + 2  # as last seen by this process
        assert float(spent[1]) + float(left[1]) == 1200

        # Only the host or a server manager may stop it or hand it over.
        assert "Only the host" in await say(world, "gamenight stop", kim)
        assert "Only the host" in await say(world, "gamenight host", kim, member=kim)
        assert "You're the host" in await say(world, "gamenight leave", host)
        assert "not in this game night" in await say(world, "gamenight leave", stranger)

        assert "Re-syncing you" in await say(world, "gamenight resync", kim)
        assert "Re-syncing 1 listener" in await say(world, "gamenight resync", host)

        assert "left the game night" in await say(world, "gamenight leave", kim)
        assert "Listeners (0)" in world.discord.message(board.id).text

        assert "Game night ended" in await say(world, "gamenight stop", host)
        assert await app.services.storage.get_session(guild) is None
        ended = world.discord.message(board.id)
        assert "over" in ended.text
        assert not ended.buttons()


async def test_hand_over_and_stop_by_a_server_manager(world: World) -> None:
    async with world.run() as app:
        guild = world.discord.default_guild.id
        host = await linked(world, "hana")
        kim = await linked(world, "kim")
        mod = world.discord.add_member("mod", manage_guild=True)
        unlinked = world.discord.add_member("nolink")
        await say(world, "gamenight start", host)
        await say(world, "gamenight join", kim)

        assert "link Spotify before they can host" in await say(
            world, "gamenight host", host, member=unlinked
        )
        assert "is the host now" in await say(world, "gamenight host", host, member=kim)
        session = await app.services.storage.get_session(guild)
        assert session is not None
        assert session.host_user_id == kim.user_id
        assert set(session.listeners) == {host.user_id}  # the old host stays, listening
        assert f"Hosted by <@{kim.user_id}>" in world.status_message().text

        assert "Game night ended" in await say(world, "gamenight stop", mod)
        assert await app.services.storage.get_session(guild) is None


async def test_buttons_join_and_leave(world: World) -> None:
    async with world.run() as app:
        guild = world.discord.default_guild.id
        host = await linked(world, "hana")
        kim = await linked(world, "kim")
        stranger = world.discord.add_member("stranger")
        await say(world, "gamenight start", host)
        board = world.status_message()

        joined = await (await world.discord.click(board, "gamenight:join", kim)).reply()
        assert joined.ephemeral
        assert "You're in" in joined.text
        refused = await (await world.discord.click(board, "gamenight:join", stranger)).reply()
        assert refused.ephemeral
        assert "run /link" in refused.text
        session = await app.services.storage.get_session(guild)
        assert session is not None
        assert set(session.listeners) == {kim.user_id}

        left = await (await world.discord.click(board, "gamenight:leave", kim)).reply()
        assert "left the game night" in left.text
        assert "Listeners (0)" in world.discord.message(board.id).text


async def test_restart_keeps_the_session_and_its_buttons(world: World) -> None:
    async with world.run():
        host = await linked(world, "hana")
        kim = await linked(world, "kim")
        lee = await linked(world, "lee")
        await say(world, "gamenight start", host)
        await say(world, "gamenight join", kim)
        board = world.status_message()

    # A new process: new client, same SQLite file, same Discord.
    async with world.run() as app:
        session = await app.services.storage.get_session(world.discord.default_guild.id)
        assert session is not None
        assert set(session.listeners) == {kim.user_id}
        joined = await (await world.discord.click(board, "gamenight:join", lee)).reply()
        assert "You're in" in joined.text
        text = world.discord.message(board.id).text
        assert f"<@{lee.user_id}>" in text
        assert f"<@{kim.user_id}>" in text
        assert world.discord.identify_count == 2


async def test_gateway_reconnect_mid_session_is_survived(world: World) -> None:
    async with world.run():
        host = await linked(world, "hana")
        kim = await linked(world, "kim")
        await say(world, "gamenight start", host)
        await world.discord.request_reconnect()
        assert "You're in" in await say(world, "gamenight join", kim)
        await world.discord.drop_connection()
        assert "Listeners (1)" in await say(world, "gamenight status", host)
        assert world.discord.identify_count == 1
        assert world.discord.resume_count == 2


async def test_a_deleted_status_message_is_posted_again(world: World) -> None:
    async with world.run() as app:
        host = await linked(world, "hana")
        await say(world, "gamenight start", host)
        board = world.status_message()
        del world.discord.messages[board.id]
        await say(world, "gamenight status", host)
        fresh = world.status_message()
        assert fresh.id != board.id
        session = await app.services.storage.get_session(world.discord.default_guild.id)
        assert session is not None
        assert session.status_message_id == fresh.id


async def test_unexpected_errors_get_a_generic_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world.run() as app:
        host = await linked(world, "hana")

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(app.services.sessions, "start", broken)
        text = await say(world, "gamenight start", host)
        assert "Something went wrong on our side" in text


async def test_a_storage_outage_gets_the_database_answer(world: World) -> None:
    # (hostile, #13) storage gone is not "something went wrong": tests/bot/test_outage.py
    async with world.run() as app:
        host = await linked(world, "hana")
        await app.services.storage.aclose()  # storage gone: every command now fails inside
        text = await say(world, "gamenight start", host)
        assert text == STORAGE_DOWN

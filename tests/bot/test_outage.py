"""Storage outages: users get honest words, the log gets one WARNING per outage, not a
traceback per event."""

from __future__ import annotations

import logging
import sqlite3

import aiohttp
import pytest

from bot.replies import GENERIC
from core.errors import STORAGE_DOWN
from storage.outage import Outage
from tests.bot.conftest import World

TRACK_ID = "4uLU6hMCjMI75M1A2tKUQC"


def test_one_warning_per_outage_and_one_line_on_recovery(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    outage = Outage("sqlite:///x.db", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="storage"):
        outage.answered()  # healthy: nothing to say
        for _ in range(50):
            outage.failed(OSError("disk gone"))
        now[0] += 42
        outage.answered()
        outage.answered()
        outage.failed(OSError("again"))
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["WARNING", "INFO", "WARNING"]
    assert "not answering" in lines[0][1] and "disk gone" in lines[0][1]
    assert "answers again after 42 s" in lines[1][1]


async def test_users_are_told_the_database_is_not_answering(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.spotify.add_account("alice-sp", "Alice")
    alice = world.discord.add_member("alice")
    async with world.run() as app:
        assert (await world.link(alice, "alice-sp"))[0] == 200
        await app.services.storage.aclose()  # the database stops answering
        caplog.clear()
        for command in ("me", "link", "gamenight start"):
            reply = await (await world.discord.slash(command, alice)).reply()
            assert reply.ephemeral
            assert reply.text == STORAGE_DOWN, command
        base = world.settings.public_base_url
        async with aiohttp.ClientSession() as http:
            for path in (f"/v1/tracks/{TRACK_ID}", "/listen/" + "x" * 32):
                async with http.get(base + path) as response:
                    assert response.status == 503, path
                    assert (await response.text()).strip() == STORAGE_DOWN
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    warnings = [r.getMessage() for r in caplog.records if r.name == "storage"]
    assert len(warnings) == 1 and "not answering" in warnings[0]


async def test_corrupt_data_is_not_called_an_outage(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A row that cannot be decrypted is a fault, not an outage: "your data is safe" would be
    a lie there, so users get the generic words, and the log an ERROR (not the outage line)."""
    world.spotify.add_account("alice-sp", "Alice")
    alice = world.discord.add_member("alice")
    async with world.run() as app:
        assert (await world.link(alice, "alice-sp"))[0] == 200
        with sqlite3.connect(world.db_path) as db:  # a damaged row, as a bad restore leaves it
            damage = "UPDATE links SET access_token_enc='garbage' WHERE discord_user_id=?"
            db.execute(damage, (alice.user_id,))
        caplog.clear()
        reply = await (await world.discord.slash("me", alice)).reply()
        assert reply.text == GENERIC
        assert not app.services.storage.outage.ongoing
    assert not [r for r in caplog.records if "not answering" in r.getMessage()]
    assert [r for r in caplog.records if r.levelno == logging.ERROR]

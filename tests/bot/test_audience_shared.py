"""The status message counts browsers served by another process on the same Redis (#15).

With compose, browsers reach the web replica while the shard running the game night posts its
status message: the count must travel through storage. Here two app instances as
`python -m bot` and `python -m bot web` build them (the real composition root) share one Redis
namespace; the browser opens the listen feed on the web one only.
"""

from __future__ import annotations

import dataclasses
import re

import aiohttp
import pytest

from bot.__main__ import running
from tests.bot.conftest import World
from tests.bot.test_gamenight import linked, say
from tests.bot.test_listen_command import first_event
from tests.conftest import free_port, storage_url_for


async def test_browsers_on_the_web_replica_show_on_the_shards_status_message(
    world: World, request: pytest.FixtureRequest
) -> None:
    url = storage_url_for("redis", world.db_path.parent, request)
    world.settings = dataclasses.replace(world.settings, storage_url=url)
    web_port = free_port()
    web_settings = dataclasses.replace(world.settings, http_port=web_port)
    async with world.run(), running(web_settings, gateway=False) as web:
        assert web.bot is None
        host = await linked(world, "hana")
        fan = world.discord.add_member("fan")
        await say(world, "gamenight start", host)
        reply = await (await world.discord.slash("gamenight listen", fan)).reply()
        (text,) = reply.link_urls()
        match = re.search(r"/listen/([A-Za-z0-9_-]{32})\b", text)
        assert match, text
        on_web = f"http://127.0.0.1:{web_port}/listen/{match[1]}/events"

        async with aiohttp.ClientSession() as http, http.get(on_web) as events:
            kind, data = await first_event(events)
            assert kind == "state" and isinstance(data["people"], dict)
            assert data["people"]["browser"] == 1
            await world.discord.wait_until(
                lambda: "🌐 1 in the browser" in world.status_message().text, within=15
            )
        # The browser left the web replica: the count goes from the shard's message too.
        await world.discord.wait_until(
            lambda: "in the browser" not in world.status_message().text, within=15
        )

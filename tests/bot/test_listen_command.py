"""/gamenight listen end to end: the link, the page behind it, the browser count on the status
message, and the link's end with the game night."""

from __future__ import annotations

import json
import re

import aiohttp

from tests.bot.conftest import World
from tests.bot.test_gamenight import linked, say


async def first_event(response: aiohttp.ClientResponse) -> tuple[str, dict[str, object]]:
    kind = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind:
            return kind, json.loads(line.removeprefix("data: "))
    raise AssertionError("the event stream ended without an event")


async def test_listen_link_page_audience_and_end(world: World) -> None:
    stranger = world.discord.add_member("stranger")  # no Spotify at all: that's the point
    async with world.run() as app:
        guild = world.discord.default_guild.id
        assert "no game night running" in await say(world, "gamenight listen", stranger)

        host = await linked(world, "hana")
        await say(world, "gamenight start", host)
        reply = await (await world.discord.slash("gamenight listen", stranger)).reply()
        assert reply.ephemeral
        (text,) = reply.link_urls()  # a button, like /link's
        assert reply.content.startswith("Listen along") and "🌐" not in reply.content  # button's
        base = re.escape(world.settings.public_base_url)
        match = re.search(base + r"/listen/([A-Za-z0-9_-]{32})\b", text)
        assert match, text
        token = match[1]
        session = await app.services.storage.get_session(guild)
        assert session is not None and session.listen_token == token
        again = await (await world.discord.slash("gamenight listen", host)).reply()
        assert token in again.link_urls()[0]  # one link per session

        page_url = match[0]
        status, page = await world.browse(page_url)
        assert status == 200 and "Listen along" in page
        status, _ = await world.browse(page_url[:-1] + ("A" if token[-1] != "A" else "B"))
        assert status == 404

        async with (
            aiohttp.ClientSession() as http,
            http.get(page_url + "/events") as events,
        ):
            assert events.headers["Content-Type"] == "text/event-stream"
            kind, data = await first_event(events)
            assert kind == "state"
            people = data["people"]
            assert isinstance(people, dict)
            # Names come from discord.py's user cache, which has no members intent to fill it.
            assert (people["spotify"], people["browser"]) == ([], 1)
            await world.discord.wait_until(
                lambda: "🌐 1 in the browser" in world.status_message().text, within=5
            )
        await world.discord.wait_until(
            lambda: "in the browser" not in world.status_message().text, within=5
        )

        await say(world, "gamenight stop", host)
        status, page = await world.browse(page_url)
        assert status == 404 and "This listen link has ended" in page

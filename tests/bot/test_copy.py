"""What players read (issue #14 items 8 and 12), through the fake Discord."""

from __future__ import annotations

from dataclasses import replace

import aiohttp

from storage.records import LinkStatus
from tests.bot.conftest import World
from tests.bot.test_gamenight import linked, say
from tests.bot.test_gamenight_sync import until


async def test_stop_by_a_manager_and_handover_to_yourself_read_right(world: World) -> None:
    async with world.run():
        host = await linked(world, "hana")
        mod = world.discord.add_member("mod", manage_guild=True)
        await say(world, "gamenight start", host)
        board = world.status_message()
        assert "You're already the host" in await say(world, "gamenight host", host, member=host)
        assert "Game night ended" in await say(world, "gamenight stop", mod)
        ended = world.discord.message(board.id).text
        assert "A server manager ended the game night" in ended
        assert "The host ended" not in ended


async def test_joining_again_with_an_expired_link_says_relink(world: World) -> None:
    async with world.run() as app:
        host = await linked(world, "hana")
        kim = await linked(world, "kim")
        await say(world, "gamenight start", host)
        await say(world, "gamenight join", kim)
        link = await app.services.storage.get_link(kim.user_id)
        assert link is not None
        await app.services.storage.put_link(replace(link, status=LinkStatus.NEEDS_RELINK))
        answer = await say(world, "gamenight join", kim)
        assert "expired" in answer and "/link" in answer
        assert "already listening" not in answer


async def test_listen_is_a_button_like_link(world: World) -> None:
    async with world.run():
        host = await linked(world, "hana")
        await say(world, "gamenight start", host)
        reply = await (await world.discord.slash("gamenight listen", host)).reply()
        assert reply.ephemeral
        (url,) = reply.link_urls()
        assert url.startswith(world.settings.public_base_url + "/listen/")
        assert url not in reply.text  # the button carries it, as /link's does


async def test_players_without_premium_are_told_how_to_listen(world: World) -> None:
    spotify = world.spotify
    async with world.run() as app:
        host = await linked(world, "hana")
        spotify.add_account("pat-sp", "Pat", premium=False)
        pat = world.discord.add_member("pat")
        assert (await world.link(pat, "pat-sp"))[0] == 200
        # /me before Spotify said anything: a hint where to go without Premium.
        assert "/gamenight listen" in await say(world, "me", pat)

        spotify.player("hana-sp").load([t.id for t in spotify.catalog[:2]], position_ms=5_000)
        await say(world, "gamenight start", host)
        board = world.status_message()
        await say(world, "gamenight join", pat)
        line = f"<@{pat.user_id}> — 🔒"
        await until(lambda: line in world.discord.message(board.id).text)
        (shown,) = [
            x for x in world.discord.message(board.id).text.splitlines() if x.startswith(line)
        ]
        assert shown.count("Premium") == 1, shown
        assert "/gamenight listen" in shown
        await until(lambda: any("Premium" in m.text for m in world.discord.dms(pat)))
        (dm,) = [m.text for m in world.discord.dms(pat) if "Premium" in m.text]
        assert "/gamenight listen" in dm

        link = await app.services.storage.get_link(pat.user_id)
        assert link is not None and link.status is LinkStatus.PREMIUM_REQUIRED
        me = await say(world, "me", pat)
        assert "no Premium" in me and "/gamenight listen" in me


async def test_pages_have_a_favicon(world: World) -> None:
    async with world.run(), aiohttp.ClientSession() as http:
        base = world.settings.public_base_url
        for path in ("/favicon.ico", "/favicon.svg"):
            async with http.get(base + path) as response:
                assert response.status == 200
                assert response.content_type == "image/svg+xml"
                assert (await response.text()).startswith("<svg")
        _, page = await world.browse(f"{world.callback_url}?state={'x' * 43}&code=abc")
        assert '<link rel="icon" href="/favicon.svg"' in page

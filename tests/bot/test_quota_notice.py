"""Spotify's QUOTA_EXCEEDED as the host sees it in Discord: when calls resume, in their zone.

The server's `%Z` is not the reader's: the DM and /gamenight status carry Discord timestamps
(`<t:EPOCH:t>`), which every client shows in its own user's time zone.
"""

from __future__ import annotations

import re
import time

from tests.bot.conftest import World
from tests.bot.test_gamenight import linked, say
from tests.bot.test_gamenight_sync import until
from tests.fakes.discord import Member

HOLD_S = 5 * 3600


def quota_dms(world: World, member: Member) -> list[str]:
    return [m.text for m in world.discord.dms(member) if "quota" in m.text]


async def test_the_host_is_told_when_calls_resume_as_a_discord_timestamp(world: World) -> None:
    spotify = world.spotify
    async with world.run():
        host = await linked(world, "hana")
        spotify.player("hana-sp").load([t.id for t in spotify.catalog[:2]], position_ms=5_000)
        await say(world, "gamenight start", host)
        started = time.time()
        spotify.fail(429, retry_after=HOLD_S, quota=True, path="/v1/me/player", times=1)
        await until(lambda: quota_dms(world, host))

        (dm,) = quota_dms(world, host)
        shown = re.search(r"resumes by itself at <t:(\d+):t>", dm)
        assert shown is not None, dm
        assert started + HOLD_S - 5 <= int(shown[1]) <= time.time() + HOLD_S
        assert time.strftime("%Z") not in dm  # not the server's zone

        status = await say(world, "gamenight status", host)
        assert f"calls resume at <t:{shown[1]}:t>" in status

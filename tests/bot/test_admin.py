"""Global command sync is owner-only, by mentioning the bot."""

from __future__ import annotations

from tests.bot.conftest import World


async def test_only_the_owner_can_sync_commands_globally(world: World) -> None:
    fake = world.discord
    global_path = f"/applications/{fake.application_id}/commands"
    async with world.run():
        assert not fake.requests("PUT", global_path)  # a dev guild is set: no global sync
        assert "gamenight" in fake.guild_commands[fake.default_guild.id]

        intruder = fake.add_member("intruder", manage_guild=True)
        channel = f"/channels/{fake.default_guild.text_channel_id}/messages"
        await fake.say(f"{fake.bot.mention} sync", fake.owner)
        call = await fake.wait_for_call("PUT", global_path)
        assert {c["name"] for c in call.body} == {"link", "unlink", "me", "gamenight"}
        reply = await fake.wait_for_call("POST", channel)
        assert "Synced 4 commands globally" in reply.body["content"]

        # Someone else (even a server manager) is ignored; the owner's next sync still runs.
        await fake.say(f"{fake.bot.mention} sync", intruder)
        await fake.say(f"{fake.bot.mention} sync", fake.owner)
        await fake.wait_until(lambda: len(fake.requests("POST", channel)) == 2)
        assert len(fake.requests("PUT", global_path)) == 2

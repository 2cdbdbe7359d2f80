"""The fake Discord against the REAL discord.py client, independent of the bot's own code.

If these fail, the end-to-end bot tests cannot be trusted: they check the gateway handshake in
both encodings, heartbeats, RECONNECT/RESUME with replay of missed events, interactions with
subcommands and user options, buttons, and that every JSON answer matches Discord's OpenAPI.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import discord
import jsonschema
import pytest
import yarl
from discord import app_commands
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.fakes.discord import EPHEMERAL, FakeDiscord, RestCall

# Discord's official OpenAPI description, vendored with its licence.
SPEC = Path(__file__).resolve().parent / "specs" / "discord-api.openapi.json"


class Probe(discord.Client):
    """A minimal discord.py bot: one slash command, one group, one persistent button."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.clicks: list[int] = []
        tree = self.tree

        @tree.command(name="ping", description="Answer pong")
        async def ping(interaction: discord.Interaction, note: str = "") -> None:
            await interaction.response.send_message(f"pong {note}".strip(), ephemeral=True)

        group = app_commands.Group(name="party", description="Party things")

        @group.command(name="invite", description="Invite someone")
        async def invite(interaction: discord.Interaction, who: discord.Member) -> None:
            await interaction.response.defer(thinking=True)
            await asyncio.sleep(0)
            await interaction.followup.send(f"invited {who.display_name} to {interaction.guild}")

        @group.command(name="board", description="Post a board with a button")
        async def board(interaction: discord.Interaction) -> None:
            assert isinstance(interaction.channel, discord.TextChannel)
            await interaction.channel.send("board", view=Board(self))
            await interaction.response.send_message("posted", ephemeral=True)

        tree.add_command(group)

    async def setup_hook(self) -> None:
        self.add_view(Board(self))
        await self.tree.sync()


class Board(discord.ui.View):
    def __init__(self, probe: Probe) -> None:
        super().__init__(timeout=None)
        self.probe = probe

    @discord.ui.button(label="Press", custom_id="probe:press")
    async def press(
        self, interaction: discord.Interaction, button: discord.ui.Button[Board]
    ) -> None:
        self.probe.clicks.append(interaction.user.id)
        await interaction.response.send_message("pressed", ephemeral=True)


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    fake = await FakeDiscord(heartbeat_interval_ms=100).start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url)
    )
    yield fake
    await fake.stop()


@pytest.fixture
def plain_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    original = discord.gateway.DiscordWebSocket.from_client.__func__  # type: ignore[attr-defined]

    async def from_client(cls: Any, client: Any, **kwargs: Any) -> Any:
        kwargs["compress"] = False
        return await original(cls, client, **kwargs)

    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "from_client", classmethod(from_client))


async def run_probe(fake: FakeDiscord) -> tuple[Probe, asyncio.Task[None]]:
    probe = Probe()
    task = asyncio.create_task(probe.start(fake.token))
    await fake.wait_ready()
    await fake.wait_for_call("PUT", f"/applications/{fake.application_id}/commands")
    return probe, task


async def close(probe: Probe, task: asyncio.Task[None]) -> None:
    await probe.close()
    await asyncio.wait_for(task, 5)


async def exercise(fake: FakeDiscord, probe: Probe) -> None:
    alice = fake.add_member("alice")
    bob = fake.add_member("bob")
    reply = await (await fake.slash("ping", alice, note="hi")).reply()
    assert reply.content == "pong hi"
    assert reply.ephemeral

    invite = await fake.slash("party invite", alice, who=bob)
    assert (await invite.wait_callback())["type"] == 5
    reply = await invite.reply()
    assert reply.content == f"invited bob to {fake.default_guild.name}"

    await (await fake.slash("party board", alice)).reply()
    (board,) = [
        m for m in fake.channel_messages(fake.default_guild.text_channel_id) if m.content == "board"
    ]
    assert set(board.buttons()) == {"probe:press"}
    pressed = await (await fake.click(board, "probe:press", bob)).reply()
    assert pressed.content == "pressed"
    assert probe.clicks == [bob.user_id]


async def test_zlib_stream_session(fake: FakeDiscord) -> None:
    probe, task = await run_probe(fake)
    try:
        assert fake.gateway_queries[0]["compress"] == "zlib-stream"
        assert probe.user is not None
        assert probe.user.id == fake.bot.user_id
        assert probe.get_guild(fake.default_guild.id) is not None
        await exercise(fake, probe)
    finally:
        await close(probe, task)


async def test_plain_text_frames(fake: FakeDiscord, plain_frames: None) -> None:
    probe, task = await run_probe(fake)
    try:
        assert "compress" not in fake.gateway_queries[0]
        await exercise(fake, probe)
    finally:
        await close(probe, task)


async def test_heartbeats_are_acknowledged(fake: FakeDiscord) -> None:
    probe, task = await run_probe(fake)
    try:
        await fake.wait_until(lambda: fake.heartbeats >= 3, within=3)
        assert fake.connected
    finally:
        await close(probe, task)


async def test_reconnect_resumes_and_replays_missed_events(fake: FakeDiscord) -> None:
    probe, task = await run_probe(fake)
    alice = fake.add_member("alice")
    try:
        await fake.request_reconnect()
        resume = next(f for f in fake.gateway_frames if f["op"] == 6)
        assert resume["d"]["token"] == fake.token
        assert (fake.identify_count, fake.resume_count) == (1, 1)
        assert (await (await fake.slash("ping", alice)).reply()).content == "pong"

        # An interaction dispatched while the socket is down arrives with the RESUME replay.
        await fake.drop_connection()
        missed = await fake.slash("ping", alice, note="late")
        assert (await missed.reply()).content == "pong late"
        assert fake.resume_count == 2
    finally:
        await close(probe, task)


async def test_wrong_token_is_refused(fake: FakeDiscord) -> None:
    probe = Probe()
    with pytest.raises(discord.LoginFailure):
        await probe.login("not-the-token")
    await probe.close()
    assert fake.calls[0].status == 401


async def test_slash_checks_options_against_the_registered_schema(fake: FakeDiscord) -> None:
    probe, task = await run_probe(fake)
    alice = fake.add_member("alice")
    try:
        with pytest.raises(AssertionError, match="unknown options"):
            await fake.slash("ping", alice, colour="red")
        with pytest.raises(AssertionError, match="missing required"):
            await fake.slash("party invite", alice)
        with pytest.raises(AssertionError, match="not registered"):
            await fake.slash("nope", alice)
    finally:
        await close(probe, task)


# ------------------------------------------------------------------ OpenAPI agreement


@cache
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC.read_text())
    return data


def response_schema(call: RestCall) -> str | None:
    """A `$ref` to the JSON schema of Discord's answer to this call, or None for no body."""
    candidates = []
    for template, ops in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, call.path) and call.method.lower() in ops:
            candidates.append((template.count("{"), template))
    assert candidates, f"{call.method} {call.path} is not in Discord's API"
    template = min(candidates)[1]
    answers = spec()["paths"][template][call.method.lower()]["responses"]
    answer = answers.get(str(call.status))
    assert answer is not None, f"{call.method} {template}: Discord never answers {call.status}"
    if "application/json" not in answer.get("content", {}):
        return None
    parts = ["paths", template, call.method.lower(), "responses", str(call.status), "content"]
    parts += ["application/json", "schema"]
    pointer = "/".join(quote(p.replace("~", "~0").replace("/", "~1"), safe="") for p in parts)
    return f"spec#/{pointer}"


async def test_every_json_answer_matches_the_openapi_spec(fake: FakeDiscord) -> None:
    probe, task = await run_probe(fake)
    try:
        await exercise(fake, probe)
    finally:
        await close(probe, task)
    registry: Registry[Any] = Registry().with_resource("spec", DRAFT202012.create_resource(spec()))
    checked = 0
    for call in fake.calls:
        ref = response_schema(call)
        if ref is None or call.response is None:
            continue
        validator = jsonschema.Draft202012Validator({"$ref": ref}, registry=registry)
        errors = sorted(validator.iter_errors(call.response), key=lambda e: list(e.path))
        assert not errors, (
            f"{call.method} {call.path}: {[(list(e.path), e.message[:200]) for e in errors[:3]]}"
        )
        checked += 1
    assert checked >= 6
    callbacks = [c for c in fake.calls if c.path.endswith("/callback")]
    assert callbacks
    assert all(c.query.get("with_response") == "1" for c in callbacks)
    assert any(c.body["data"].get("flags") == EPHEMERAL for c in callbacks if c.body.get("data"))

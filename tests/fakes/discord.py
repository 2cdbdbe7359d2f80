"""Fake Discord: REST under /api/v10 plus a websocket gateway that the REAL discord.py talks to.

A real aiohttp server on 127.0.0.1 (random port). It plays the part of Discord for one bot
application: login, the gateway handshake (HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats,
RECONNECT -> RESUME with replay of missed events), command registration, interactions (slash
commands with subcommands and options, button clicks) and the REST calls a bot makes in answer
(interaction callbacks, followups, @original edits, channel messages, DMs). Every REST call is
recorded, and helpers let a test "type" a command as a member and await what the bot answered:

    fake = await FakeDiscord().start()
    alice = fake.add_member("alice")
    ... start the bot with api_base=fake.api_base, gateway_url=fake.gateway_url ...
    await fake.wait_ready()
    reply = await fake.slash("gamenight start", alice).reply()
    assert "started" in reply.text

Facts the real client depends on (see ../shared/prototypes/README.md):
- JSON answers carry `Content-Type: application/json` EXACTLY (discord.py's json_or_text
  returns a str for `application/json; charset=utf-8`).
- READY carries `resume_gateway_url`, which discord.py uses for RESUME.
- Interaction callbacks come with `?with_response=1` and expect `{"interaction", "resource"}`.
Payload shapes follow tests/specs/discord-api.openapi.json (tests/test_fake_discord.py
validates every JSON answer against it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_presence import DiscordPresence
from tests.fakes.discord_voice import FakeVoice

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
MEMBER_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | USE_APPLICATION_COMMANDS
BOT_PERMISSIONS = MEMBER_PERMISSIONS | EMBED_LINKS

EPHEMERAL = 1 << 6  # message flag
LOADING = 1 << 7  # message flag of a deferred ("thinking") response

# Interaction callback types.
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7

# Application command option types.
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER = 1, 2, 3, 4, 5, 6

TIMESTAMP = "2024-01-01T00:00:00+00:00"
BODY = web.RequestKey("body", object)  # the parsed request body, set by the recording middleware


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly `application/json`: web.json_response appends a charset discord.py rejects.
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type="application/json"
    )


def error_response(status: int, code: int, message: str) -> web.Response:
    return json_response({"code": code, "message": message}, status=status)


def number_components(components: list[JSON]) -> list[JSON]:
    """Copy components, giving each the numeric `id` Discord assigns (1, 2, ... in order)."""
    counter = itertools.count(1)

    def walk(items: list[JSON]) -> list[JSON]:
        out = []
        for item in items:
            copy = {**item, "id": item.get("id") or next(counter)}
            if "components" in item:
                copy["components"] = walk(item["components"])
            out.append(copy)
        return out

    return walk(json.loads(json.dumps(components)))


@dataclass
class Member:
    user_id: int
    name: str
    permissions: int = MEMBER_PERMISSIONS
    bot: bool = False
    nick: str | None = None  # the server nickname, shown instead of the name in that guild

    @property
    def mention(self) -> str:
        return f"<@{self.user_id}>"

    def user(self) -> JSON:
        return {
            "id": str(self.user_id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
            "primary_guild": None,
        }

    def member(self, *, with_user: bool = True, with_permissions: bool = False) -> JSON:
        data: JSON = {
            "roles": [],
            "joined_at": TIMESTAMP,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": self.nick,
            "avatar": None,
            "pending": False,
        }
        if with_user:
            data["user"] = self.user()
        if with_permissions:
            data["permissions"] = str(self.permissions)
        return data


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    text_channel_id: int
    members: dict[int, Member] = field(default_factory=dict)

    def channel(self) -> JSON:
        return {
            "id": str(self.text_channel_id),
            "type": 0,
            "guild_id": str(self.id),
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }


@dataclass(frozen=True)
class RestCall:
    """One REST request the bot made, and what the fake answered."""

    method: str
    path: str  # below /api/v10, without the query
    query: Mapping[str, str]
    body: Any  # parsed JSON (payload_json for multipart), or None
    status: int
    response: Any


@dataclass(frozen=True)
class Message:
    """A message as Discord stores it, with shortcuts for assertions."""

    data: JSON

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def channel_id(self) -> int:
        return int(self.data["channel_id"])

    @property
    def content(self) -> str:
        return str(self.data.get("content") or "")

    @property
    def embeds(self) -> list[JSON]:
        return list(self.data.get("embeds") or [])

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.data.get("flags") or 0) & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(int(self.data.get("flags") or 0) & LOADING)

    @property
    def text(self) -> str:
        """Content plus every embed's visible text, for `in` assertions."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            for f in embed.get("fields") or []:
                parts += [f.get("name") or "", f.get("value") or ""]
            parts.append((embed.get("footer") or {}).get("text") or "")
        return "\n".join(p for p in parts if p)

    def buttons(self) -> dict[str, JSON]:
        """Buttons by custom_id (link buttons have none and are left out)."""
        found: dict[str, JSON] = {}
        for row in self.data.get("components") or []:
            for comp in row.get("components") or []:
                if comp.get("type") == 2 and comp.get("custom_id"):
                    found[comp["custom_id"]] = comp
        return found

    def link_urls(self) -> list[str]:
        return [
            comp["url"]
            for row in self.data.get("components") or []
            for comp in row.get("components") or []
            if comp.get("type") == 2 and comp.get("url")
        ]


class Interaction:
    """An interaction the fake dispatched; collects what the bot answered to it."""

    def __init__(self, fake: FakeDiscord, payload: JSON) -> None:
        self.fake = fake
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.callback: JSON | None = None  # the callback body the bot sent
        self.original_id: int | None = None  # message created by the callback, if any
        self.followup_ids: list[int] = []
        self.dispatched_at = time.monotonic()

    async def wait_callback(self, within: float = 5.0) -> JSON:
        await self.fake.wait_until(lambda: self.callback is not None, within)
        assert self.callback is not None
        return self.callback

    def _visible(self) -> Message | None:
        cb = self.callback
        if cb is None:
            return None
        kind = cb["type"]
        if kind in (CHANNEL_MESSAGE, UPDATE_MESSAGE) and self.original_id is not None:
            return self.fake.message(self.original_id)
        if kind == DEFERRED_CHANNEL_MESSAGE and self.original_id is not None:
            original = self.fake.message(self.original_id)
            if not original.loading:
                return original
        if self.followup_ids:
            return self.fake.message(self.followup_ids[0])
        return None

    async def reply(self, within: float = 5.0) -> Message:
        """The first answer the user sees: response message, edited deferral or a followup."""
        await self.fake.wait_until(lambda: self._visible() is not None, within)
        visible = self._visible()
        assert visible is not None
        return visible

    async def followups(self, count: int, within: float = 5.0) -> list[Message]:
        await self.fake.wait_until(lambda: len(self.followup_ids) >= count, within)
        return [self.fake.message(i) for i in self.followup_ids]


class _Connection:
    def __init__(self, ws: web.WebSocketResponse, compress: bool) -> None:
        self.ws = ws
        self.zlib = zlib.compressobj() if compress else None

    async def send(self, payload: JSON) -> None:
        text = json.dumps(payload)
        if self.zlib is None:
            await self.ws.send_str(text)
        else:
            # zlib-stream: one context for the connection, each message ends in a sync flush.
            data = self.zlib.compress(text.encode()) + self.zlib.flush(zlib.Z_SYNC_FLUSH)
            await self.ws.send_bytes(data)


class FakeDiscord:
    """One bot application, its guilds and the gateway session of the bot connected to it."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        heartbeat_interval_ms: int = 41_250,
        owner_name: str = "owner",
    ) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.callback_deadline = 3.0  # seconds Discord waits for an interaction's first answer
        # Real Discord acknowledges a heartbeat after a network round trip (tens of ms). An
        # instant ACK races discord.py's keep-alive thread, which records the send time only
        # after the send returns: the ACK then looks a whole interval late ("Can't keep up,
        # websocket is 41.2s behind"). Set 0 to see that race.
        self.heartbeat_ack_delay_s = 0.05
        self._ids = itertools.count(1_100_000_000_000_000_000)
        self.application_id = self.next_id()
        self.bot = Member(self.application_id, "Game Night", BOT_PERMISSIONS, bot=True)
        self.owner = Member(self.next_id(), owner_name)
        self.guilds: dict[int, Guild] = {}
        self.default_guild = self.add_guild("Game Night HQ", owner=self.owner)

        self.calls: list[RestCall] = []
        self.global_commands: dict[str, JSON] = {}
        self.guild_commands: dict[int, dict[str, JSON]] = {}
        self.messages: dict[int, JSON] = {}
        self.dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self.interactions: dict[str, Interaction] = {}  # by token
        self.gateway_frames: list[JSON] = []  # every frame the bot sent
        self.gateway_queries: list[dict[str, str]] = []
        self.identify_count = 0
        self.resume_count = 0
        self.heartbeats = 0
        # The next N gateway connections are refused with 503 before the upgrade, as Discord's
        # gateway does during an outage (discordstatus.com incidents: "gateway 5xx"); 0: never.
        self.gateway_refusals = 0

        self._conn: _Connection | None = None
        self._session_id: str | None = None
        self._seq = 0
        self._events: list[JSON] = []  # dispatched events of the session, for RESUME replay
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Other fakes of Discord's surface (tests/fakes/discord_oauth.py): each may answer a
        # request (after it is recorded) before the routes below, or return None.
        self.intercepts: list[Callable[[web.Request], Awaitable[web.StreamResponse | None]]] = []
        self.presence = DiscordPresence(self)  # intents, PRESENCE_UPDATE (discord_presence.py)
        self.voice = FakeVoice(self)  # voice channels, states and server (op 4)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._record, self._intercept])
        app.router.add_get("/gateway", self._gateway)
        api = "/api/v10"
        routes: list[tuple[str, str, Callable[[web.Request], Any]]] = [
            ("GET", "/users/@me", self._get_me),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("PUT", "/applications/{app}/commands", self._put_commands),
            ("GET", "/applications/{app}/commands", self._get_commands),
            ("PUT", "/applications/{app}/guilds/{guild}/commands", self._put_commands),
            ("GET", "/applications/{app}/guilds/{guild}/commands", self._get_commands),
            ("POST", "/interactions/{iid}/{token}/callback", self._callback),
            ("POST", "/webhooks/{app}/{token}", self._followup),
            ("GET", "/webhooks/{app}/{token}/messages/{mid}", self._webhook_message),
            ("PATCH", "/webhooks/{app}/{token}/messages/{mid}", self._webhook_message),
            ("DELETE", "/webhooks/{app}/{token}/messages/{mid}", self._webhook_message),
            ("POST", "/channels/{cid}/messages", self._create_message),
            ("GET", "/channels/{cid}/messages/{mid}", self._channel_message),
            ("PATCH", "/channels/{cid}/messages/{mid}", self._channel_message),
            ("DELETE", "/channels/{cid}/messages/{mid}", self._channel_message),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/users/{uid}", self._get_user),
            ("GET", "/guilds/{gid}/members/{uid}", self._get_member),
            ("GET", "/guilds/{guild}", self._get_guild),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, api + path, handler)
        app.router.add_route("*", api + "/{tail:.*}", self._unhandled)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        await self.voice.start()
        return self

    async def stop(self) -> None:
        await self.presence.aclose()
        if self._conn is not None and not self._conn.ws.closed:
            await self._conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.voice.stop()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def next_id(self) -> int:
        return next(self._ids)

    # ---------------------------------------------------------------- world

    def add_guild(self, name: str, *, owner: Member) -> Guild:
        guild = Guild(self.next_id(), name, owner.user_id, self.next_id())
        guild.members[self.bot.user_id] = self.bot
        guild.members[owner.user_id] = owner
        self.guilds[guild.id] = guild
        return guild

    def add_member(
        self,
        name: str,
        *,
        guild: Guild | None = None,
        manage_guild: bool = False,
        permissions: int | None = None,
    ) -> Member:
        perms = MEMBER_PERMISSIONS if permissions is None else permissions
        if manage_guild:
            perms |= MANAGE_GUILD
        member = Member(self.next_id(), name, perms)
        (guild or self.default_guild).members[member.user_id] = member
        return member

    def message(self, message_id: int) -> Message:
        return Message(self.messages[message_id])

    def channel_messages(self, channel_id: int) -> list[Message]:
        return [Message(m) for m in self.messages.values() if int(m["channel_id"]) == channel_id]

    def dms(self, user: Member) -> list[Message]:
        channel = self.dm_channels.get(user.user_id)
        return [] if channel is None else self.channel_messages(channel)

    def requests(self, method: str, path_prefix: str = "") -> list[RestCall]:
        return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    def commands_for(self, guild: Guild | None) -> dict[str, JSON]:
        merged = dict(self.global_commands)
        if guild is not None:
            merged.update(self.guild_commands.get(guild.id, {}))
        return merged

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), within)

    async def wait_for_call(
        self, method: str, path_prefix: str, within: float = 5.0, after: int = 0
    ) -> RestCall:
        """The first call matching, among calls number `after` onwards."""

        def find() -> RestCall | None:
            return next(
                (
                    c
                    for c in self.calls[after:]
                    if c.method == method and c.path.startswith(path_prefix)
                ),
                None,
            )

        await self.wait_until(lambda: find() is not None, within)
        found = find()
        assert found is not None
        return found

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---------------------------------------------------------------- REST: plumbing

    @web.middleware
    async def _intercept(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        for intercept in self.intercepts:
            answer = await intercept(request)
            if answer is not None:
                return answer
        response: web.StreamResponse = await handler(request)
        return response

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            response: web.StreamResponse = await handler(request)
            return response
        body = await self._read_body(request)
        request[BODY] = body
        response = await handler(request)
        answer = None
        if isinstance(response, web.Response) and response.body is not None:
            raw = response.body
            if isinstance(raw, bytes) and response.content_type == "application/json":
                answer = json.loads(raw)
        path = request.path.removeprefix("/api/v10")
        self.calls.append(
            RestCall(request.method, path, dict(request.query), body, response.status, answer)
        )
        await self._notify()
        return response

    @staticmethod
    async def _read_body(request: web.Request) -> Any:
        if not request.can_read_body:
            return None
        if request.content_type == "application/json":
            return json.loads(await request.read())
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if getattr(part, "name", None) == "payload_json":
                    return json.loads(await part.text())  # type: ignore[union-attr]
            return None
        return (await request.read()).decode(errors="replace")

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    async def _unhandled(self, request: web.Request) -> web.Response:
        log.warning("fake discord: unhandled %s %s", request.method, request.path)
        return error_response(404, 0, f"fake: unhandled {request.method} {request.path}")

    # ---------------------------------------------------------------- REST: application

    async def _get_me(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        return json_response(
            {**self.bot.user(), "verified": True, "mfa_enabled": False, "locale": "en-US"}
        )

    async def _get_application(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        return json_response(
            {
                "id": str(self.application_id),
                "name": "Game Night",
                "icon": None,
                "description": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "flags_new": "0",
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "role_connections_verification_url": None,
                "approximate_guild_count": len(self.guilds),
                "approximate_user_install_count": 0,
                "approximate_user_authorization_count": 0,
                "explicit_content_filter": 0,
                "eligible_oauth2_scopes": ["bot", "applications.commands"],
                "owner": self.owner.user(),
                "team": None,
                "bot": self.bot.user(),
                "summary": "",
                "integration_types_config": {},
            }
        )

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _put_commands(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        guild_id = request.match_info.get("guild")
        stored: dict[str, JSON] = {}
        for cmd in request[BODY] or []:
            record = {
                "type": 1,
                "description": "",
                "options": [],
                **cmd,
                "id": str(self.next_id()),
                "application_id": str(self.application_id),
                "version": str(self.next_id()),
                "default_member_permissions": cmd.get("default_member_permissions"),
                "dm_permission": cmd.get("dm_permission", True),
                "nsfw": cmd.get("nsfw", False),
                # discord.py sends null for "Discord's default"; Discord answers the defaults.
                "integration_types": cmd.get("integration_types") or [0],
                "contexts": cmd.get("contexts") or [0, 1, 2],
            }
            if guild_id is not None:
                record["guild_id"] = guild_id
            stored[record["name"]] = record
        if guild_id is None:
            self.global_commands = stored
        else:
            self.guild_commands[int(guild_id)] = stored
        return json_response(list(stored.values()))

    async def _get_commands(self, request: web.Request) -> web.Response:
        guild_id = request.match_info.get("guild")
        if guild_id is None:
            return json_response(list(self.global_commands.values()))
        return json_response(list(self.guild_commands.get(int(guild_id), {}).values()))

    # ---------------------------------------------------------------- REST: messages

    def _new_message(
        self, channel_id: int, body: JSON, *, interaction: Interaction | None = None
    ) -> JSON:
        message: JSON = {
            "id": str(self.next_id()),
            "channel_id": str(channel_id),
            "type": 0 if interaction is None else 20,
            "content": body.get("content") or "",
            "author": self.bot.user(),
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": number_components(body.get("components") or []),
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "flags": int(body.get("flags") or 0),
        }
        if interaction is not None:
            message["application_id"] = str(self.application_id)
            message["webhook_id"] = str(self.application_id)
            user = interaction.payload.get("member", {}).get("user") or interaction.payload["user"]
            message["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.payload["type"],
                "user": user,
                "authorizing_integration_owners": interaction.payload[
                    "authorizing_integration_owners"
                ],
            }
            if "message" in interaction.payload:
                message["interaction_metadata"]["interacted_message_id"] = interaction.payload[
                    "message"
                ]["id"]
        self.messages[int(message["id"])] = message
        return message

    def _edit_message(self, message: JSON, body: JSON) -> JSON:
        for key in ("content", "embeds"):
            if key in body and body[key] is not None:
                message[key] = body[key]
        if body.get("components") is not None:
            message["components"] = number_components(body["components"])
        if "flags" in body and body["flags"] is not None:
            message["flags"] = int(body["flags"])
        message["flags"] = int(message.get("flags") or 0) & ~LOADING
        message["edited_timestamp"] = TIMESTAMP
        return message

    def _interaction_channel(self, ix: Interaction) -> int:
        return int(ix.payload["channel_id"])

    async def _callback(self, request: web.Request) -> web.Response:
        ix = self.interactions.get(request.match_info["token"])
        if ix is None or str(ix.id) != request.match_info["iid"]:
            return error_response(404, 10062, "Unknown interaction")
        if ix.callback is not None:
            return error_response(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - ix.dispatched_at > self.callback_deadline:
            # Discord forgets an interaction that was not answered within 3 seconds.
            return error_response(404, 10062, "Unknown interaction")
        body: JSON = request[BODY] or {}
        kind = int(body.get("type", 0))
        data: JSON = body.get("data") or {}
        ix.callback = body
        answer: JSON = {
            "interaction": {
                "id": str(ix.id),
                "type": ix.payload["type"],
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
            }
        }
        message: JSON | None = None
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0)
            if kind == DEFERRED_CHANNEL_MESSAGE:
                flags |= LOADING
            message = self._new_message(
                self._interaction_channel(ix), {**data, "flags": flags}, interaction=ix
            )
            ix.original_id = int(message["id"])
        elif kind in (UPDATE_MESSAGE, DEFERRED_UPDATE_MESSAGE):
            target = ix.payload.get("message")
            if target is None:
                return error_response(400, 50035, "Invalid Form Body: not a component interaction")
            stored = self.messages[int(target["id"])]
            ix.original_id = int(stored["id"])
            if kind == UPDATE_MESSAGE:
                message = self._edit_message(stored, data)
        if message is not None:
            answer["interaction"]["response_message_id"] = message["id"]
            if kind in (CHANNEL_MESSAGE, UPDATE_MESSAGE):
                answer["resource"] = {"type": kind, "message": message}
        if request.query.get("with_response") in ("1", "true"):
            return json_response(answer)
        return web.Response(status=204)

    async def _followup(self, request: web.Request) -> web.Response:
        ix = self.interactions.get(request.match_info["token"])
        if ix is None:
            return error_response(404, 10015, "Unknown Webhook")
        if ix.callback is None:
            return error_response(404, 10015, "Unknown Webhook")  # Discord needs the callback first
        body: JSON = request[BODY] or {}
        original = self.messages.get(ix.original_id) if ix.original_id is not None else None
        if original is not None and Message(original).loading:
            # The first followup after a "thinking" deferral completes that message, keeping
            # the deferral's ephemerality (what users see in the Discord client).
            keep = int(original["flags"]) & EPHEMERAL
            message = self._edit_message(original, {**body, "flags": keep})
        else:
            message = self._new_message(self._interaction_channel(ix), body, interaction=ix)
        ix.followup_ids.append(int(message["id"]))
        return json_response(message)

    async def _webhook_message(self, request: web.Request) -> web.Response:
        ix = self.interactions.get(request.match_info["token"])
        if ix is None:
            return error_response(404, 10015, "Unknown Webhook")
        mid = request.match_info["mid"]
        message_id = ix.original_id if mid == "@original" else int(mid)
        if message_id is None or message_id not in self.messages:
            return error_response(404, 10008, "Unknown Message")
        message = self.messages[message_id]
        if request.method == "DELETE":
            del self.messages[message_id]
            return web.Response(status=204)
        if request.method == "PATCH":
            self._edit_message(message, request[BODY] or {})
        return json_response(message)

    def _known_channel(self, channel_id: int) -> bool:
        return channel_id in self.dm_channels.values() or any(
            g.text_channel_id == channel_id for g in self.guilds.values()
        )

    async def _create_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        channel_id = int(request.match_info["cid"])
        if not self._known_channel(channel_id):
            return error_response(404, 10003, "Unknown Channel")
        return json_response(self._new_message(channel_id, request[BODY] or {}))

    async def _channel_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        message = self.messages.get(int(request.match_info["mid"]))
        if message is None or message["channel_id"] != request.match_info["cid"]:
            return error_response(404, 10008, "Unknown Message")
        if request.method == "DELETE":
            del self.messages[int(message["id"])]
            return web.Response(status=204)
        if request.method == "PATCH":
            self._edit_message(message, request[BODY] or {})
        return json_response(message)

    def _find_user(self, user_id: int) -> Member | None:
        return next(
            (g.members[user_id] for g in self.guilds.values() if user_id in g.members), None
        )

    async def _get_user(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        user = self._find_user(int(request.match_info["uid"]))
        if user is None:
            return error_response(404, 10013, "Unknown User")
        return json_response(user.user())

    async def _get_member(self, request: web.Request) -> web.Response:
        # A REST read: no members intent needed (discord.com/developers/docs/resources/guild).
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        guild = self.guilds.get(int(request.match_info["gid"]))
        if guild is None:
            return error_response(404, 10004, "Unknown Guild")
        member = guild.members.get(int(request.match_info["uid"]))
        if member is None:
            return error_response(404, 10007, "Unknown Member")
        return json_response(member.member())

    async def _get_guild(self, request: web.Request) -> web.Response:
        """`GET /guilds/{id}`: the REST guild object, without the gateway-only fields (members,
        channels, presences, joined_at ...). Discord answers 404 Unknown Guild for an id the
        bot is not in (docs: "Get Guild"; 10004)."""
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        guild = self.guilds.get(int(request.match_info["guild"]))
        if guild is None:
            return error_response(404, 10004, "Unknown Guild")
        gateway_only = [
            "unavailable",
            "member_count",
            "large",
            "channels",
            "members",
            "voice_states",
            "presences",
            "threads",
            "stage_instances",
            "guild_scheduled_events",
            "joined_at",
        ]
        payload = self.guild_payload(guild)
        return json_response({k: v for k, v in payload.items() if k not in gateway_only})

    async def _create_dm(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        user_id = int((request[BODY] or {})["recipient_id"])
        user = self._find_user(user_id)
        if user is None:
            return error_response(404, 10013, "Unknown User")
        channel_id = self.dm_channels.setdefault(user_id, self.next_id())
        return json_response(
            {
                "id": str(channel_id),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [user.user()],
            }
        )

    # ---------------------------------------------------------------- gateway

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.gateway_refusals > 0:
            self.gateway_refusals -= 1
            return web.Response(status=503, text="upstream connect error")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.gateway_queries.append(dict(request.query))
        conn = _Connection(ws, compress=request.query.get("compress") == "zlib-stream")
        await conn.send({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            self.gateway_frames.append(frame)
            op = frame.get("op")
            if op == 1:
                self.heartbeats += 1
                if self.heartbeat_ack_delay_s:
                    await asyncio.sleep(self.heartbeat_ack_delay_s)
                # A client killed mid-heartbeat (kill -9 in tests/bench/restart.py) has closed
                # its socket: the ack goes nowhere, as on Discord, instead of a handler traceback.
                with contextlib.suppress(ConnectionResetError):
                    await conn.send({"op": 11, "d": None})
            elif op == 2:
                await self._identify(conn, frame["d"])
            elif op == 6:
                await self._resume(conn, frame["d"])
            elif op == 4:
                await self.voice.on_voice_state_update(frame["d"])
            await self._notify()
        if self._conn is conn:
            self._conn = None
        await self._notify()
        return ws

    async def _identify(self, conn: _Connection, data: JSON) -> None:
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        if await self.presence.identify(conn.ws, data):
            return  # 4014: privileged intents not enabled in the developer portal
        self.identify_count += 1
        self._conn = conn
        self._session_id = secrets.token_hex(16)
        self._seq = 0
        self._events = []
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": {**self.bot.user(), "verified": True, "mfa_enabled": False},
                "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
                "session_id": self._session_id,
                "session_type": "normal",
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.application_id), "flags": 0},
                "shard": [0, 1],
                "private_channels": [],
                "relationships": [],
            },
        )
        for guild in self.guilds.values():
            await self.dispatch(
                "GUILD_CREATE", self.presence.guild_create(guild, self.guild_payload(guild))
            )

    async def _resume(self, conn: _Connection, data: JSON) -> None:
        if data.get("token") != self.token or data.get("session_id") != self._session_id:
            await conn.send({"op": 9, "d": False})  # invalid session: the client identifies anew
            return
        self.resume_count += 1
        self._conn = conn
        seen = int(data.get("seq") or 0)
        for event in self._events:
            if event["s"] > seen:
                await conn.send(event)
        await self.dispatch("RESUMED", {})

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send a gateway event; while the bot is away it waits for the RESUME replay."""
        self._seq += 1
        payload = {"op": 0, "t": event, "s": self._seq, "d": data}
        self._events.append(payload)
        conn = self._conn
        if conn is not None and not conn.ws.closed:
            try:
                await conn.send(payload)
            except ConnectionError:
                log.info("fake discord: connection lost while sending %s; kept for RESUME", event)

    async def request_reconnect(self, within: float = 5.0) -> None:
        """Send op 7 RECONNECT and wait until the bot has resumed on a new connection."""
        assert self._conn is not None, "no bot connected"
        resumes = self.resume_count
        await self._conn.send({"op": 7, "d": None})
        await self.wait_until(lambda: self.resume_count > resumes, within)

    async def drop_connection(self, code: int = 4000) -> None:
        """Close the gateway socket the way Discord does on an internal error."""
        assert self._conn is not None, "no bot connected"
        await self._conn.ws.close(code=code)

    async def wait_ready(self, within: float = 10.0) -> None:
        """Wait until a bot identified and registered its commands (setup_hook ran)."""
        await self.wait_until(lambda: self._conn is not None and self.identify_count > 0, within)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.ws.closed

    # ---------------------------------------------------------------- interactions

    def _base_interaction(self, kind: int, member: Member, guild: Guild) -> JSON:
        return {
            "id": str(self.next_id()),
            "application_id": str(self.application_id),
            "type": kind,
            "token": "itok-" + secrets.token_urlsafe(24),
            "version": 1,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(guild.text_channel_id),
            "channel": guild.channel(),
            "member": member.member(with_permissions=True),
            "app_permissions": str(BOT_PERMISSIONS),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 8 * 1024 * 1024,
        }

    async def _send_interaction(self, payload: JSON) -> Interaction:
        ix = Interaction(self, payload)
        self.interactions[ix.token] = ix
        await self.dispatch("INTERACTION_CREATE", payload)
        return ix

    async def slash(
        self,
        command: str,
        member: Member,
        /,
        *,
        guild: Guild | None = None,
        **options: Any,
    ) -> Interaction:
        """Invoke `/command [group] [sub]` as `member`, as the Discord client would.

        The command must have been registered by the bot; options are checked against its
        schema (unknown names and missing required options fail the test, as the Discord
        client would refuse them). Member options take a `Member`.
        """
        guild = guild or self.default_guild
        words = command.split()
        registered = self.commands_for(guild).get(words[0])
        assert registered is not None, (
            f"/{words[0]} is not registered: {sorted(self.commands_for(guild))}"
        )
        required_perms = registered.get("default_member_permissions")
        if required_perms is not None and not self._has_permissions(member, int(required_perms)):
            raise PermissionError(f"{member.name} cannot see /{words[0]} (Discord hides it)")
        resolved: JSON = {}
        schema = registered
        # The path through subcommand groups and subcommands, outermost first.
        path: list[JSON] = []
        for word in words[1:]:
            sub = next((o for o in schema.get("options") or [] if o["name"] == word), None)
            assert sub is not None, f"/{command}: no subcommand {word!r}"
            assert sub["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP), (
                f"/{command}: {word!r} takes a value"
            )
            path.append({"name": word, "type": sub["type"]})
            schema = sub
        leaf_options = self._leaf_options(command, schema, options, resolved, guild)
        if path:
            path[-1]["options"] = leaf_options
            for outer, inner in itertools.pairwise(path):
                outer["options"] = [inner]
            top_options = [path[0]]
        else:
            top_options = leaf_options
        data: JSON = {
            "id": registered["id"],
            "name": registered["name"],
            "type": 1,
            "options": top_options,
        }
        if registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        if resolved:
            data["resolved"] = resolved
        payload = self._base_interaction(2, member, guild)
        payload["data"] = data
        return await self._send_interaction(payload)

    def _leaf_options(
        self, command: str, schema: JSON, given: Mapping[str, Any], resolved: JSON, guild: Guild
    ) -> list[JSON]:
        declared = {o["name"]: o for o in schema.get("options") or []}
        unknown = set(given) - set(declared)
        assert not unknown, f"/{command}: unknown options {sorted(unknown)}"
        missing = [n for n, o in declared.items() if o.get("required") and n not in given]
        assert not missing, f"/{command}: missing required options {missing}"
        out: list[JSON] = []
        for name, value in given.items():
            kind = declared[name]["type"]
            if kind == USER:
                assert isinstance(value, Member), f"/{command} {name}: pass a Member"
                resolved.setdefault("users", {})[str(value.user_id)] = value.user()
                if value.user_id in guild.members:
                    resolved.setdefault("members", {})[str(value.user_id)] = value.member(
                        with_user=False, with_permissions=True
                    )
                out.append({"name": name, "type": kind, "value": str(value.user_id)})
            else:
                out.append({"name": name, "type": kind, "value": value})
        return out

    @staticmethod
    def _has_permissions(member: Member, required: int) -> bool:
        return bool(member.permissions & ADMINISTRATOR) or member.permissions & required == required

    async def click(
        self, message: Message | int, custom_id: str, member: Member, *, guild: Guild | None = None
    ) -> Interaction:
        """Press the button `custom_id` on a stored message, as `member`."""
        message_id = message if isinstance(message, int) else message.id
        stored = self.messages[message_id]
        button = Message(stored).buttons().get(custom_id)
        assert button is not None, f"message {message_id} has no button {custom_id!r}"
        assert not button.get("disabled"), f"button {custom_id!r} is disabled"
        payload = self._base_interaction(3, member, guild or self.default_guild)
        payload["channel_id"] = stored["channel_id"]
        payload["message"] = json.loads(json.dumps(stored))
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        return await self._send_interaction(payload)

    async def say(self, content: str, member: Member, *, guild: Guild | None = None) -> None:
        """A member posts a message in the guild's text channel (MESSAGE_CREATE)."""
        guild = guild or self.default_guild
        message: JSON = {
            "id": str(self.next_id()),
            "channel_id": str(guild.text_channel_id),
            "guild_id": str(guild.id),
            "type": 0,
            "content": content,
            "author": member.user(),
            "member": member.member(with_user=False),
            "attachments": [],
            "embeds": [],
            "components": [],
            "mentions": [self.bot.user()] if self.bot.mention in content else [],
            "mention_roles": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "flags": 0,
        }
        self.messages[int(message["id"])] = message
        await self.dispatch("MESSAGE_CREATE", message)

    # ---------------------------------------------------------------- payloads

    def guild_payload(self, guild: Guild) -> JSON:
        everyone = {
            "id": str(guild.id),
            "name": "@everyone",
            "permissions": str(MEMBER_PERMISSIONS),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "owner_id": str(guild.owner_id),
            "unavailable": False,
            "member_count": len(guild.members),
            "large": False,
            "roles": [everyone],
            "channels": [guild.channel(), *self.voice.guild_channels(guild)],
            "members": [m.member() for m in guild.members.values()],
            "voice_states": self.voice.guild_states(guild),
            "presences": [],
            "emojis": [],
            "stickers": [],
            "threads": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "features": [],
            "joined_at": TIMESTAMP,
            "premium_tier": 0,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
        }

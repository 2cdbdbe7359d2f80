"""Presence for the fake Discord: intents, GUILD_CREATE's members/presences, PRESENCE_UPDATE.

Wired into tests/fakes/discord.py in three places (IDENTIFY, GUILD_CREATE, stop). Shapes and
rules from ../shared/prototypes/presence_probe.py (verified with the real discord.py 2.7.1):

- Privileged intents must be "ticked in the developer portal" (`portal`, both by default): an
  IDENTIFY asking for one that is not gets close code 4014 "Disallowed intent(s)", which
  discord.py raises as PrivilegedIntentsRequired.
- GUILD_CREATE: with GUILD_PRESENCES every member and the presences of those online; without
  it only the bot (and people in voice, which this fake has none of) and no presences.
- PRESENCE_UPDATE, only to a session with GUILD_PRESENCES, one per guild the bot shares with
  the member (each with its guild_id), for a member whose fake Spotify player changed (`share`):
  track, seek, pause (the Spotify activity disappears), resume, a track ending by itself.
- Discord's delay is undocumented (REALITY.md: treat 0.3-2 s as configurable): `delay_s` plus
  uniform `jitter_s`, ON by default; updates of one member keep their order.
- `hide(member)`: they do not share Spotify on Discord (Settings > Connections: "Display
  Spotify as your status" off): online, but never a Spotify activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.fakes.spotify_catalog import FakePlayer, FakeTrack

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord, Guild, Member

JSON = dict[str, Any]

MEMBERS = 1 << 1  # GUILD_MEMBERS, privileged
PRESENCES = 1 << 8  # GUILD_PRESENCES, privileged
MESSAGE_CONTENT = 1 << 15  # privileged
PRIVILEGED = MEMBERS | PRESENCES | MESSAGE_CONTENT


def spotify_activity(
    user_id: int, track: FakeTrack, *, start_ms: int, session_id: str, now_ms: int
) -> JSON:
    """A Spotify "Listening to" activity as Discord sends it (probe, "Event shapes")."""
    return {
        "id": "spotify:1",
        "name": "Spotify",
        "type": 2,
        "flags": 48,
        "created_at": now_ms,
        "session_id": session_id,
        "sync_id": track.id,
        "party": {"id": f"spotify:{user_id}"},
        "details": track.name,
        "state": "; ".join(track.artists),
        "timestamps": {"start": start_ms, "end": start_ms + track.duration_ms},
        "assets": {"large_image": f"spotify:ab67616d0000b273{track.album_id[:24]}",
                   "large_text": track.album},
    }  # fmt: skip


def _same(a: list[JSON], b: list[JSON]) -> bool:
    """The same listening state (created_at aside; start may differ by rounding)."""
    if not a or not b:
        return not a and not b
    x, y = a[0], b[0]
    return bool(
        x["sync_id"] == y["sync_id"]
        and abs(x["timestamps"]["start"] - y["timestamps"]["start"]) <= 5
    )


class DiscordPresence:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.portal = MEMBERS | PRESENCES  # privileged intents enabled for the application
        self.intents = 0  # of the live gateway session
        self.delay_s = 0.5  # Discord's fan-out delay (undocumented: 0.3-2 s) ...
        self.jitter_s = 0.3  # ... plus up to this much more, uniformly
        self.rng = random.Random(5)
        self.refused = 0  # IDENTIFYs closed with 4014
        self.sent: list[JSON] = []  # every PRESENCE_UPDATE `d` sent
        self.status: dict[int, str] = {}  # user id -> online/idle/dnd/offline (default online)
        self.activities: dict[int, list[JSON]] = {}
        self._hidden: set[int] = set()
        self._sessions: dict[int, str] = {}
        self._due: dict[int, float] = {}  # a member's last scheduled delivery (keeps order)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[int, asyncio.TimerHandle] = {}

    # -- the gateway side ------------------------------------------------------------------

    async def identify(self, ws: Any, data: JSON) -> bool:
        """Check IDENTIFY's intents; True when the connection was closed with 4014."""
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED & ~self.portal:
            self.refused += 1
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return True
        self.intents = intents
        return False

    def guild_create(self, guild: Guild, payload: JSON) -> JSON:
        """Filter GUILD_CREATE's members and presences by the session's intents."""
        if not self.intents & PRESENCES:
            bot = str(self.fake.bot.user_id)
            members = [m for m in payload["members"] if m["user"]["id"] == bot]
            return {**payload, "members": members, "presences": []}
        presences = [
            self.presence(m) for m in guild.members.values() if self._status(m) != "offline"
        ]
        return {**payload, "presences": presences}

    def _status(self, member: Member) -> str:
        return self.status.get(member.user_id, "online")

    def presence(self, member: Member, guild_id: int | None = None) -> JSON:
        status = self._status(member)
        online = status != "offline"
        data: JSON = {
            "user": {"id": str(member.user_id)},
            "status": status,
            "client_status": {"desktop": status} if online else {},
            "activities": self.activities.get(member.user_id, []) if online else [],
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return data

    # -- the world -------------------------------------------------------------------------

    def share(self, member: Member, player: FakePlayer) -> None:
        """Mirror this fake Spotify player as the member's presence (now and on changes)."""
        self._sessions.setdefault(member.user_id, secrets.token_hex(16))
        player.on_change.append(lambda: self._player_changed(member, player))
        activities = self._activity(member, player)
        self.activities[member.user_id] = activities
        with contextlib.suppress(RuntimeError):  # no loop: GUILD_CREATE will carry it
            self._watch_end(member, player)
            self.set_presence(member, activities)  # they "come online" with it

    def hide(self, member: Member) -> None:
        """They do not show Spotify on Discord: no Spotify activity, ever."""
        self._hidden.add(member.user_id)
        self.activities.pop(member.user_id, None)

    def _activity(self, member: Member, player: FakePlayer) -> list[JSON]:
        snap = player.now()
        track = player.track
        if member.user_id in self._hidden or track is None or not snap.is_playing:
            return []
        start_ms = round(snap.at * 1000) - snap.position_ms
        return [
            spotify_activity(
                member.user_id,
                track,
                start_ms=start_ms,
                session_id=self._sessions[member.user_id],
                now_ms=round(time.time() * 1000),
            )
        ]

    def _player_changed(self, member: Member, player: FakePlayer) -> None:
        # Called from inside the player (maybe mid-settle): read it once that is done.
        with contextlib.suppress(RuntimeError):  # no loop: a test driving players directly
            asyncio.get_running_loop().call_soon(self._changed, member, player)

    def _changed(self, member: Member, player: FakePlayer) -> None:
        activities = self._activity(member, player)
        self._watch_end(member, player)
        if _same(activities, self.activities.get(member.user_id, [])):
            return
        self.activities[member.user_id] = activities
        self.set_presence(member, activities)

    def _watch_end(self, member: Member, player: FakePlayer) -> None:
        """A track ending is noticed by reading the player: look at its predicted end."""
        if (timer := self._timers.pop(member.user_id, None)) is not None:
            timer.cancel()
        snap, track = player.now(), player.track
        if track is None or not snap.is_playing:
            return
        remaining = (track.duration_ms - snap.position_ms) / 1000
        self._timers[member.user_id] = asyncio.get_running_loop().call_later(
            max(0.0, remaining) + 0.001, self._changed, member, player
        )

    def set_presence(self, member: Member, activities: list[JSON], status: str = "") -> None:
        """Deliver a presence change after Discord's delay, once per shared guild."""
        if status:
            self.status[member.user_id] = status
        self.activities[member.user_id] = activities
        now = time.monotonic()
        due = max(
            now + self.delay_s + self.rng.uniform(0, self.jitter_s),
            self._due.get(member.user_id, 0.0) + 0.001,
        )
        self._due[member.user_id] = due
        snapshot = {gid: self.presence(member, gid) for gid in self._guilds_of(member)}
        task = asyncio.get_running_loop().create_task(self._deliver(due, snapshot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _guilds_of(self, member: Member) -> list[int]:
        return [g.id for g in self.fake.guilds.values() if member.user_id in g.members]

    async def _deliver(self, due: float, updates: dict[int, JSON]) -> None:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if not self.intents & PRESENCES:
            return  # Discord sends none without the intent
        for data in updates.values():
            self.sent.append(data)
            await self.fake.dispatch("PRESENCE_UPDATE", data)

    async def wait_sent(self, predicate: Callable[[JSON], bool], within: float = 5.0) -> JSON:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for data in self.sent:
                if predicate(data):
                    return data
            await asyncio.sleep(0.01)
        raise TimeoutError("no such PRESENCE_UPDATE was sent")

    async def aclose(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

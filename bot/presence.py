"""Discord presence as the host's push signal: the intents, their fallback, and the listener.

Discord pushes a member's Spotify activity over the gateway (PRESENCE_UPDATE) for free, where
reading their player costs Spotify quota. It takes two privileged intents, ticked in the
developer portal: presences (the updates) and members (the member cache that GUILD_CREATE's
presences land in). Facts below are from ../shared/prototypes/presence_probe.py, verified
against discord.py 2.7.1.

- `intents_for(wanted)`: the intents to ask for (DISCORD_PRESENCE_INTENT).
- Refused (close code 4014 -> discord.PrivilegedIntentsRequired, raised by Client.connect
  without retrying), the bot reconnects without them (`drop_privileged_intents`), says so
  once in the log, and the board's `note` tells /gamenight status.
- `PresenceListener` turns `discord.Spotify` into `core.presence.Listening` on the board. It
  listens to on_raw_presence_update (enable_raw_presences=True), not on_presence_update:
  discord.py parses every frame already read before a handler runs, so the `after` of
  on_presence_update can already show a later update (a pause followed by a new track shows
  as one skip); the raw event carries each update's own activities. Discord sends one update
  per guild the bot shares with the member: the same (track, start) again is dropped.
  GUILD_CREATE's presences fire no event: `ready` reads the cached members once connected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import discord
from discord.ext import commands

from core.presence import Listening, Presence, PresenceBoard

log = logging.getLogger(__name__)

REFUSED_NOTE = (
    "Discord presence is off: the bot's Presence and Server Members intents are not enabled "
    "in the Discord developer portal, so it polls Spotify instead (slower, and it spends "
    "more of the API quota). README, section Presence, says how to turn them on."
)
SWITCHED_OFF_NOTE = (
    "Discord presence is switched off (DISCORD_PRESENCE_INTENT=false): the bot polls Spotify."
)

_UNSEEN = object()


def intents_for(wanted: bool) -> discord.Intents:
    intents = discord.Intents.default()
    intents.presences = intents.members = wanted
    return intents


def drop_privileged_intents(client: discord.Client) -> None:
    """Make `client` identify without presences and members on its next connect.

    A Client's intents are fixed at construction; building a new one would mean a second bot
    (cogs, views, command tree). discord.py 2.7.1 keeps everything the intents decide on its
    ConnectionState (state.py __init__: _intents, member_cache_flags, _chunk_guilds,
    store_user, raw_presence_flag); they are set here exactly as a Client built with
    Intents.default() sets them. tests/bot/test_presence.py checks the result against a fake
    Discord that refuses the intents.
    """
    state: Any = client._connection
    intents = intents_for(False)
    state._intents = intents
    state.member_cache_flags = discord.MemberCacheFlags.from_intents(intents)
    state._chunk_guilds = False
    state.store_user = state.store_user_no_intents
    state.raw_presence_flag = False


def spotify_of(activities: Iterable[Any]) -> discord.Spotify | None:
    """The Spotify activity among them (Member.activity is activities[0]: maybe a custom status)."""
    return next((a for a in activities if isinstance(a, discord.Spotify)), None)


def listening_of(spotify: discord.Spotify | None, now: float) -> Listening | None:
    """The activity as a `Listening`, its position taken at wall-clock `now`."""
    if spotify is None or not spotify.track_id:
        return None
    try:
        start, end = spotify.start.timestamp(), spotify.end.timestamp()
    except KeyError:  # an activity without timestamps: discord.py raises KeyError
        duration = position = None
    else:
        duration = round((end - start) * 1000)
        position = min(duration, max(0, round((now - start) * 1000)))
    return Listening(
        track_id=spotify.track_id,
        title=spotify.title,
        artists=tuple(spotify.artists),
        album=spotify.album,
        duration_ms=duration,
        position_ms=position,
    )


def _key(spotify: discord.Spotify | None) -> object:
    if spotify is None:
        return None
    try:
        return (spotify.track_id, spotify.start)
    except KeyError:
        return (spotify.track_id, None)


class PresenceListener:
    """Puts members' Spotify presences on the board, one update per change."""

    def __init__(
        self,
        board: PresenceBoard,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.board = board
        self._clock = clock
        self._monotonic = monotonic
        self._keys: dict[int, object] = {}

    def seen(self, user_id: int, activities: Sequence[Any]) -> None:
        spotify = spotify_of(activities)
        key = _key(spotify)
        if self._keys.get(user_id, _UNSEEN) == key:
            return  # the same change again, from another guild we share with them
        self._keys[user_id] = key
        received = self._monotonic()
        self.board.update(Presence(user_id, listening_of(spotify, self._clock()), received))

    def ready(self, guilds: Iterable[discord.Guild]) -> None:
        """GUILD_CREATE's presences (they fire no event): every cached member once."""
        for guild in guilds:
            for member in guild.members:
                if not member.bot:
                    self.seen(member.id, member.activities)


class PresenceCog(commands.Cog):
    """The gateway side: presence events to the listener, and the board's availability."""

    def __init__(self, bot: commands.Bot, listener: PresenceListener) -> None:
        self.bot = bot
        self.presences = listener

    @commands.Cog.listener()
    async def on_raw_presence_update(self, payload: discord.RawPresenceUpdateEvent) -> None:
        self.presences.seen(payload.user_id, payload.activities)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        board = self.presences.board
        board.available = self.bot.intents.presences
        if board.available:
            self.presences.ready(self.bot.guilds)

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        if self.presences.board.available:
            self.presences.ready([guild])


def presence_note(board: PresenceBoard | None) -> str:
    """What /gamenight status says about presence ("" when it works)."""
    return board.note if board is not None else ""

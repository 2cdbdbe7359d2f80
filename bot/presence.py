"""Discord's PRESENCE_UPDATE -> the PresenceBoard: what each member plays on Spotify.

The smallest listener voice needs (the `presence` branch builds the full one): discord.py's
`Spotify` activity becomes a `core.presence.Listening`, stamped with the monotonic time it
arrived. One update per change: a member in several shared guilds arrives once per guild.
"""

from __future__ import annotations

import datetime
import time

import discord
from discord.ext import commands

from core.presence import Listening, Presence, PresenceBoard


def listening_of(member: discord.Member, now: datetime.datetime | None = None) -> Listening | None:
    """The member's Spotify activity as a `Listening`, or None when there is none."""
    spotify = next((a for a in member.activities if isinstance(a, discord.Spotify)), None)
    if spotify is None or not spotify.track_id:
        return None
    now = now or datetime.datetime.now(datetime.UTC)
    duration_ms = position_ms = None
    start, end = spotify._timestamps.get("start"), spotify._timestamps.get("end")
    if start is not None:
        position_ms = max(0, int(now.timestamp() * 1000) - int(start))
    if start is not None and end is not None:
        duration_ms = max(0, int(end) - int(start))
    return Listening(
        track_id=spotify.track_id,
        title=spotify.title,
        artists=tuple(spotify.artists),
        album=spotify.album,
        duration_ms=duration_ms,
        position_ms=position_ms,
    )


class PresenceWatch(commands.Cog):
    """Keeps the presence board current from the gateway."""

    def __init__(self, board: PresenceBoard, intents: discord.Intents) -> None:
        self.board = board
        board.available = intents.presences
        self._last: dict[int, tuple[str, int] | None] = {}  # user -> (track, start) seen

    def note(self, member: discord.Member) -> None:
        """Put `member`'s current Spotify activity on the board if it changed."""
        spotify = next((a for a in member.activities if isinstance(a, discord.Spotify)), None)
        key = (spotify.track_id, int(spotify._timestamps.get("start", 0))) if spotify else None
        if member.id in self._last and self._last[member.id] == key:
            return
        self._last[member.id] = key
        self.board.update(Presence(member.id, listening_of(member), time.monotonic()))

    @commands.Cog.listener()
    async def on_presence_update(self, before: discord.Member, after: discord.Member) -> None:
        self.note(after)

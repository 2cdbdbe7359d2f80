"""What Discord says a member is listening to on Spotify: their presence, free of Spotify quota.

The bot's gateway listener turns discord.py's `Spotify` activity into a `Listening` and puts it
on the `PresenceBoard`; the sync engine, the listen-along feed and voice read the board and
subscribe to its changes. A presence is a hint pushed by Discord with an undocumented delay
(shared/REALITY.md), never the only truth: the engine confirms with a budgeted player read
when it can.

Positions are kept against the monotonic clock of the moment the bot received the presence:
Discord's `timestamps.start` is a wall-clock instant, converted once on arrival.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listening:
    """A member's Spotify activity: the track and where it was when the presence arrived."""

    track_id: str
    title: str
    artists: tuple[str, ...]
    album: str
    duration_ms: int | None  # timestamps.end - timestamps.start; None without timestamps
    position_ms: int | None  # at `Presence.received_at`; None without timestamps


@dataclass(frozen=True)
class Presence:
    """The latest word on one member: listening to something, or not (`listening` None =
    paused, stopped, closed Spotify or went offline: Discord does not tell these apart)."""

    user_id: int
    listening: Listening | None
    received_at: float  # monotonic seconds

    def position_at(self, now: float) -> int | None:
        """The member's position at monotonic `now`, assuming they kept playing."""
        if self.listening is None or self.listening.position_ms is None:
            return None
        position = self.listening.position_ms + int((now - self.received_at) * 1000)
        duration = self.listening.duration_ms
        return min(position, duration) if duration is not None else position


PresenceCallback = Callable[[Presence], None]


class PresenceBoard:
    """The latest presence per member, and who wants to hear of changes.

    `available` is False when the bot runs without the presences intent (switched off, or
    refused by Discord): then nothing will ever arrive and readers fall back to polling.
    """

    def __init__(self) -> None:
        self.available = False
        self.note = ""  # why presence is off, for /gamenight status ("" when nothing to say)
        self._latest: dict[int, Presence] = {}
        self._subscribers: list[PresenceCallback] = []

    def get(self, user_id: int) -> Presence | None:
        """The latest presence, or None when Discord has told us nothing about them."""
        return self._latest.get(user_id)

    def update(self, presence: Presence) -> None:
        """Store and announce a presence. Callers de-duplicate (one update per shared guild)."""
        self._latest[presence.user_id] = presence
        for callback in list(self._subscribers):
            try:
                callback(presence)
            except Exception:  # one broken reader must not starve the others
                log.exception("presence subscriber failed")

    def listening_to(self, track_id: str) -> Listening | None:
        """What Discord says about a track someone is playing (title, artists, album)."""
        for presence in self._latest.values():
            if presence.listening is not None and presence.listening.track_id == track_id:
                return presence.listening
        return None

    def forget(self, user_id: int) -> None:
        self._latest.pop(user_id, None)

    def subscribe(self, callback: PresenceCallback) -> Callable[[], None]:
        """Call `callback` (synchronously, keep it cheap) on every update; returns unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

"""In-memory LinkStore + OAuthStateStore, until the real SQLite backend is available on main.

Follows the storage contract (single-use states consumed atomically: no await inside).
"""

from __future__ import annotations

from dataclasses import replace

from storage.records import (
    LinkStatus,
    OAuthState,
    SpotifyLink,
    StateCheck,
    StateConsumption,
)


class MemoryLinks:
    def __init__(self) -> None:
        self.links: dict[int, SpotifyLink] = {}
        self.states: dict[str, OAuthState] = {}
        self.used: set[str] = set()
        self.writes = 0

    async def put_link(self, link: SpotifyLink) -> None:
        self.writes += 1
        self.links[link.discord_user_id] = link

    async def get_link(self, discord_user_id: int) -> SpotifyLink | None:
        return self.links.get(discord_user_id)

    async def set_link_status(self, discord_user_id: int, status: LinkStatus) -> bool:
        link = self.links.get(discord_user_id)
        if link is None:
            return False
        self.links[discord_user_id] = replace(link, status=status)
        return True

    async def delete_link(self, discord_user_id: int) -> bool:
        return self.links.pop(discord_user_id, None) is not None

    async def put_oauth_state(self, state: OAuthState) -> None:
        self.states[state.state] = state

    async def consume_oauth_state(self, state: str, now: float) -> StateConsumption:
        if state in self.used:
            return StateConsumption(StateCheck.USED)
        record = self.states.pop(state, None)
        if record is None:
            return StateConsumption(StateCheck.UNKNOWN)
        self.used.add(state)
        if record.expires_at <= now:
            return StateConsumption(StateCheck.EXPIRED, record)
        return StateConsumption(StateCheck.OK, record)

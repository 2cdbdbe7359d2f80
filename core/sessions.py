"""Game night sessions: who hosts, who listens, and the rules around them (DESIGN §4).

One session per guild; the host and every listener must have a working Spotify link; only the
host or someone who can manage the server stops it or hands it over. The rules live here, with
no Discord in sight: the bot turns commands and buttons into these calls, and the refusals
(`SessionRefused`, `NotLinked`) carry the message the user sees.

`SessionWatcher` is the seam for whatever runs alongside a session (the sync engine, the status
message): they hear about every start, change and end, after it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from core.errors import NotLinked, UserFacingError
from storage.base import LinkStore, SessionStore
from storage.records import LinkStatus, ListenerState, ListenerStatus, Session

log = logging.getLogger(__name__)


class SessionRefused(UserFacingError):
    """A session command that the rules do not allow; the message says why and what to do."""

    http_status = 409


class NoSession(SessionRefused):
    def __init__(self) -> None:
        super().__init__("There's no game night running here. Start one with /gamenight start.")


class SessionRunning(SessionRefused):
    def __init__(self, host_user_id: int) -> None:
        super().__init__(
            "A game night is already running here — join it with /gamenight join "
            "(or the Join button on its status message)."
        )
        self.host_user_id = host_user_id


class NotHost(SessionRefused):
    def __init__(self, action: str) -> None:
        super().__init__(f"Only the host or someone with Manage Server can {action}.")


class NotListening(SessionRefused):
    def __init__(self) -> None:
        super().__init__("You're not in this game night. Join with /gamenight join.")


class AlreadyListening(SessionRefused):
    def __init__(self) -> None:
        super().__init__("You're already listening along.")


class SpotifyAppMissing(SessionRefused):
    """Following on one's own Spotify account, on a bot run without Spotify app keys."""

    def __init__(self) -> None:
        super().__init__(
            "Following the host on your own Spotify needs this bot's Spotify app settings "
            "(SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET), which its operator hasn't set. "
            "You can still listen along: /gamenight voice join plays the host's music in "
            "their voice channel, and /gamenight listen opens it in a browser."
        )


class HostCannot(SessionRefused):
    """The host asked for something only a listener does (join, leave)."""


class SessionWatcher(Protocol):
    """Told about sessions after each change is stored; failures are logged, never raised.

    The sync engine's runner implements this to start a loop per session (`session_started`,
    also called for every stored session when the process starts), wake it when listeners or
    the host change (`session_changed`), and stop it (`session_ended`). The bot's status board
    implements it to keep the status message current.
    """

    async def session_started(self, session: Session) -> None: ...

    async def session_changed(self, session: Session) -> None: ...

    async def session_ended(self, session: Session, reason: str) -> None: ...


HOST_RESYNCS = frozenset({ListenerStatus.ATTACHED, ListenerStatus.DETACHED, ListenerStatus.ERROR})


@dataclass(frozen=True)
class Resynced:
    session: Session
    user_ids: tuple[int, ...]  # listeners put back to ATTACHED


class SessionService:
    """The session rules over storage. One instance per process."""

    def __init__(
        self,
        sessions: SessionStore,
        links: LinkStore,
        *,
        clock: Callable[[], float] = time.time,
        spotify_accounts: bool = True,
    ) -> None:
        # False: no Spotify app keys; hosts need no link (voice and the listen page follow
        # their Discord presence) and nobody can follow on their own Spotify.
        self.spotify_accounts = spotify_accounts
        self._sessions = sessions
        self._links = links
        self._clock = clock
        self._hooks: list[SessionWatcher] = []  # told after each change is stored
        # Serialises read-modify-write sequences per guild within this process.
        self._locks: dict[int, asyncio.Lock] = {}

    def subscribe(self, hooks: SessionWatcher) -> None:
        self._hooks.append(hooks)

    def unsubscribe(self, hooks: SessionWatcher) -> None:
        if hooks in self._hooks:
            self._hooks.remove(hooks)

    # --- queries ------------------------------------------------------------------------

    async def find(self, guild_id: int) -> Session | None:
        return await self._sessions.get_session(guild_id)

    async def get(self, guild_id: int) -> Session:
        session = await self._sessions.get_session(guild_id)
        if session is None:
            raise NoSession()
        return session

    # --- commands -----------------------------------------------------------------------

    async def start(self, guild_id: int, host_user_id: int, channel_id: int | None) -> Session:
        """Make `host_user_id` the host of a new session; refused if one is running."""
        if self.spotify_accounts:
            await self._require_link(host_user_id, host=True)
        async with self._lock(guild_id):
            now = self._clock()
            session = Session(
                guild_id=guild_id,
                host_user_id=host_user_id,
                created_at=now,
                channel_id=channel_id,
                host_active_at=now,
            )
            if not await self._sessions.create_session(session):
                existing = await self._sessions.get_session(guild_id)
                raise SessionRunning(existing.host_user_id if existing else 0)
        log.info("guild %s: game night started by %s", guild_id, host_user_id)
        await self._notify("session_started", session)
        return session

    async def abandon(self, session: Session) -> None:
        """Undo a start whose status message could not be posted."""
        await self._sessions.delete_session(session.guild_id)
        await self._notify_ended(session, "abandoned")

    async def set_status_message(self, guild_id: int, channel_id: int, message_id: int) -> None:
        await self._sessions.update_session(
            guild_id, {"channel_id": channel_id, "status_message_id": message_id}
        )

    async def join(self, guild_id: int, user_id: int) -> Session:
        async with self._lock(guild_id):
            session = await self.get(guild_id)
            if user_id == session.host_user_id:
                raise HostCannot("You're the host — everyone else follows your playback.")
            if not self.spotify_accounts:
                raise SpotifyAppMissing()
            # The link first: a listener whose link expired must hear that, not "already in".
            await self._require_link(user_id)
            if user_id in session.listeners:
                raise AlreadyListening()
            now = self._clock()
            listener = ListenerState(
                user_id, ListenerStatus.ATTACHED, joined_at=now, updated_at=now
            )
            if not await self._sessions.put_listener(guild_id, listener):
                raise NoSession()
            session = await self.get(guild_id)
        log.info("guild %s: %s joined", guild_id, user_id)
        await self._notify("session_changed", session)
        return session

    async def leave(self, guild_id: int, user_id: int) -> Session:
        async with self._lock(guild_id):
            session = await self.get(guild_id)
            if user_id == session.host_user_id:
                raise HostCannot(
                    "You're the host. Hand over with /gamenight host, or end it with "
                    "/gamenight stop."
                )
            if user_id not in session.listeners:
                raise NotListening()
            await self._sessions.remove_listener(guild_id, user_id)
            session = await self.get(guild_id)
        log.info("guild %s: %s left", guild_id, user_id)
        await self._notify("session_changed", session)
        return session

    async def stop(self, guild_id: int, user_id: int, *, can_manage: bool) -> Session:
        """End the session; the host or a server manager may."""
        async with self._lock(guild_id):
            session = await self.get(guild_id)
            if user_id != session.host_user_id and not can_manage:
                raise NotHost("stop this game night")
            if not await self._sessions.delete_session(guild_id):
                raise NoSession()
        log.info("guild %s: game night stopped by %s", guild_id, user_id)
        by_host = user_id == session.host_user_id
        await self._notify_ended(session, "stopped" if by_host else "stopped_by_manager")
        return session

    async def end(self, guild_id: int, reason: str) -> Session | None:
        """End without a permission check (idle host, bot removed from the guild)."""
        async with self._lock(guild_id):
            session = await self._sessions.get_session(guild_id)
            if session is None or not await self._sessions.delete_session(guild_id):
                return None
        log.info("guild %s: game night ended (%s)", guild_id, reason)
        await self._notify_ended(session, reason)
        return session

    async def hand_over(
        self, guild_id: int, user_id: int, new_host_id: int, *, can_manage: bool
    ) -> Session:
        """Make `new_host_id` the host; the old host stays on as a listener."""
        async with self._lock(guild_id):
            session = await self.get(guild_id)
            if user_id != session.host_user_id and not can_manage:
                raise NotHost("hand over the host role")
            if new_host_id == session.host_user_id:
                raise HostCannot(
                    "You're already the host."
                    if new_host_id == user_id
                    else "They're already the host."
                )
            if self.spotify_accounts:
                await self._require_link(
                    new_host_id, host=True, someone_else=new_host_id != user_id
                )
            now = self._clock()
            old_host = session.host_user_id
            await self._sessions.remove_listener(guild_id, new_host_id)
            await self._sessions.update_session(
                guild_id, {"host_user_id": new_host_id, "snapshot": None, "host_active_at": now}
            )
            if await self._links.get_link(old_host) is not None:
                await self._sessions.put_listener(
                    guild_id, ListenerState(old_host, joined_at=now, updated_at=now)
                )
            session = await self.get(guild_id)
        log.info("guild %s: host handed from %s to %s", guild_id, old_host, new_host_id)
        await self._notify("session_changed", session)
        return session

    async def resync(self, guild_id: int, user_id: int) -> Resynced:
        """Re-attach a listener who wandered off; the host re-attaches everyone."""
        async with self._lock(guild_id):
            session = await self.get(guild_id)
            if user_id == session.host_user_id:
                # Everyone who can follow (each is read again before being commanded, so one
                # who drifted unnoticed is caught too); a listener waiting for Premium, a
                # relink or an open Spotify is not "in sync" because the host asked, and
                # re-attaching them would tell them the same thing again.
                targets = [s for s in session.listeners.values() if s.status in HOST_RESYNCS]
            elif user_id in session.listeners:
                targets = [session.listeners[user_id]]
            else:
                raise NotListening()
            now = self._clock()
            resynced = []
            for state in targets:
                # The lock is per process: a leave stored by another process since the read
                # above must stand, so only listeners still present are written.
                if await self._sessions.update_listener(
                    guild_id,
                    replace(state, status=ListenerStatus.ATTACHED, detail="", updated_at=now),
                ):
                    resynced.append(state.user_id)
            session = await self.get(guild_id)
        await self._notify("session_changed", session)
        return Resynced(session, tuple(resynced))

    async def resume_all(self, owned: Callable[[int], bool] | None = None) -> list[Session]:
        """Tell the hooks about every stored session (the process just started).

        `owned` picks the guilds this process serves (its Discord shards' guilds); the others
        are left to their own processes.
        """
        sessions = [
            s for s in await self._sessions.list_sessions() if owned is None or owned(s.guild_id)
        ]
        for session in sessions:
            await self._notify("session_started", session)
        return sessions

    # --- helpers ------------------------------------------------------------------------

    def _lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    async def _require_link(
        self, user_id: int, *, host: bool = False, someone_else: bool = False
    ) -> None:
        link = await self._links.get_link(user_id)
        role = "host" if host else "listen along"
        if link is None:
            raise NotLinked(
                f"They need to link Spotify before they can {role} — ask them to run /link."
                if someone_else
                else f"You need to link Spotify before you can {role} — run /link first."
            )
        if link.status is LinkStatus.NEEDS_RELINK:
            raise NotLinked(
                "Their Spotify link has expired — they need to run /link again."
                if someone_else
                else "Your Spotify link has expired — run /link again."
            )

    async def _notify(self, event: str, session: Session) -> None:
        for hooks in list(self._hooks):
            try:
                await getattr(hooks, event)(session)
            except Exception:
                log.exception("guild %s: %s hook %r failed", session.guild_id, event, hooks)

    async def _notify_ended(self, session: Session, reason: str) -> None:
        for hooks in list(self._hooks):
            try:
                await hooks.session_ended(session, reason)
            except Exception:
                log.exception("guild %s: session_ended hook %r failed", session.guild_id, hooks)

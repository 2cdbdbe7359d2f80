"""SpotifyClient: the async face of the Spotify Web API for the rest of Game Night.

Every call: a token (the user's stored link, or the app's client-credentials token), a slot
from the app's limiter, then spotipy in the bounded pool. A 401 refreshes the token (once, per
user, however many calls saw it) and retries once; a 429 holds the whole app for Retry-After;
everything else surfaces as the core.errors taxonomy. See SPOTIFY_API.md for the contract.

Every call is counted by the account-wide `quota` governor (core/spotify/quota.py). Player calls
take a `priority` for it; callers that may be refused under pressure (the sync engine's reads)
ask `quota.allows(priority)` first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import spotipy

from core.errors import (
    NotFound,
    PremiumRequired,
    RateLimited,
    TokenExpired,
    Upstream,
)
from core.spotify.accounts import Accounts
from core.spotify.config import SpotifyConfig
from core.spotify.errors import from_exception
from core.spotify.limiter import AppLimiter
from core.spotify.models import (
    Device,
    Playback,
    PlaylistRef,
    Profile,
    parse_device,
    parse_playback,
    parse_playlist,
    parse_track,
)
from core.spotify.quota import CallPriority, QuotaGovernor
from core.spotify.tokens import AppToken, UserTokens
from core.spotify.transport import SpotipyPool, Timed
from core.tracks import TrackInfo, is_track_id
from storage.base import LinkStore
from storage.records import LinkStatus

log = logging.getLogger(__name__)

T = TypeVar("T")
Call = Callable[[spotipy.Spotify], T]
JSON = dict[str, Any]


class SpotifyClient:
    def __init__(
        self,
        config: SpotifyConfig,
        links: LinkStore,
        http: aiohttp.ClientSession,
        *,
        limiter: AppLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.quota = QuotaGovernor()
        self.accounts = Accounts(http, config, clock)
        self.limiter = limiter or AppLimiter(config.rate_limit, config.rate_window)
        self.pool = SpotipyPool(
            config.api_base,
            max_workers=config.max_workers,
            call_timeout=config.call_timeout,
            socket_timeout=config.call_timeout + config.socket_grace,
            clock=clock,
        )
        self.tokens = UserTokens(links, self.accounts, margin=config.refresh_margin, clock=clock)
        self.app_token = AppToken(self.accounts, margin=config.refresh_margin, clock=clock)

    async def aclose(self) -> None:
        self.pool.close()

    # --- plumbing -------------------------------------------------------------------------

    async def _send(self, token: str, call: Call[T]) -> Timed[T]:
        await self.limiter.acquire(self.config.max_rate_wait)
        self.quota.spend()
        try:
            return await self.pool.call(token, call)
        except Exception as exc:
            error = from_exception(exc)
            if error is None:
                raise
            if isinstance(error, RateLimited):
                self.limiter.penalize(error.retry_after, error.quota_exceeded)
                if error.quota_exceeded:
                    self.quota.hold(error.retry_after)
            elif isinstance(error, Upstream):
                log.warning("Spotify call failed: %s", error.status or type(exc).__name__)
            raise error from exc

    async def _user(self, user_id: int, call: Call[T], command: bool = False) -> Timed[T]:
        """A call with the user's token: one refresh and one retry on 401."""
        link = await self.tokens.current(user_id)
        try:
            try:
                result = await self._send(link.access_token, call)
            except TokenExpired:
                link = await self.tokens.refresh(user_id, link.access_token)
                result = await self._send(link.access_token, call)
        except PremiumRequired:
            await self.tokens.set_status(link, LinkStatus.PREMIUM_REQUIRED)
            raise
        if command and link.status == LinkStatus.PREMIUM_REQUIRED:
            # A player command went through, so the account has Premium now.
            await self.tokens.set_status(link, LinkStatus.OK)
        return result

    async def _app(self, call: Call[T]) -> T:
        token = await self.app_token.current()
        try:
            return (await self._send(token, call)).value
        except TokenExpired:
            token = await self.app_token.refresh(token)
            return (await self._send(token, call)).value

    # --- user calls -----------------------------------------------------------------------

    async def playback(
        self, discord_user_id: int, *, priority: CallPriority = CallPriority.COMMAND
    ) -> Playback | None:
        """The user's playback state; None when nothing is playing (204)."""
        result = await self._user(discord_user_id, lambda sp: sp.current_playback())
        return parse_playback(result.value, result.sent_at, result.answered_at)

    async def play(
        self,
        discord_user_id: int,
        track_uri: str | None,
        position_ms: int | None = None,
        device_id: str | None = None,
        *,
        priority: CallPriority = CallPriority.COMMAND,
    ) -> None:
        """Play `track_uri` from `position_ms`; track_uri None resumes what is loaded."""
        uris = [track_uri] if track_uri is not None else None
        position = max(0, int(position_ms)) if position_ms is not None else None
        await self._user(
            discord_user_id,
            lambda sp: sp.start_playback(device_id=device_id, uris=uris, position_ms=position),
            command=True,
        )

    async def pause(
        self,
        discord_user_id: int,
        device_id: str | None = None,
        *,
        priority: CallPriority = CallPriority.COMMAND,
    ) -> None:
        await self._user(discord_user_id, lambda sp: sp.pause_playback(device_id), command=True)

    async def seek(
        self,
        discord_user_id: int,
        position_ms: int,
        device_id: str | None = None,
        *,
        priority: CallPriority = CallPriority.COMMAND,
    ) -> None:
        position = max(0, int(position_ms))
        await self._user(
            discord_user_id, lambda sp: sp.seek_track(position, device_id), command=True
        )

    async def next_track(self, discord_user_id: int) -> None:
        await self._user(discord_user_id, lambda sp: sp.next_track(), command=True)

    async def devices(
        self, discord_user_id: int, *, priority: CallPriority = CallPriority.COMMAND
    ) -> list[Device]:
        result = await self._user(discord_user_id, lambda sp: sp.devices())
        return [parse_device(d) for d in (result.value or {}).get("devices") or []]

    async def transfer(self, discord_user_id: int, device_id: str, play: bool = False) -> None:
        await self._user(
            discord_user_id,
            lambda sp: sp.transfer_playback(device_id, force_play=play),
            command=True,
        )

    async def profile(self, discord_user_id: int) -> Profile:
        result = await self._user(discord_user_id, lambda sp: sp.me())
        return self._profile(result.value)

    async def profile_with_token(self, access_token: str) -> Profile:
        """/v1/me with a token that is not stored yet (while linking)."""
        return self._profile((await self._send(access_token, lambda sp: sp.me())).value)

    @staticmethod
    def _profile(data: JSON | None) -> Profile:
        if not data or not data.get("id"):
            raise Upstream("Spotify sent a profile we cannot read.")
        return Profile(id=str(data["id"]), display_name=str(data.get("display_name") or data["id"]))

    # --- catalog calls --------------------------------------------------------------------

    async def track(self, track_id: str) -> TrackInfo:
        if not is_track_id(track_id):
            raise NotFound("That is not a Spotify track id.")
        track = parse_track(await self._app(lambda sp: sp.track(track_id)))
        if track is None:
            raise NotFound("Spotify could not find that track.")
        return track

    async def user_playlists(self, discord_user_id: int) -> list[PlaylistRef]:
        pages = await self._pages(lambda sp: sp.current_user_playlists(limit=50), discord_user_id)
        return [parse_playlist(p) for page in pages for p in page.get("items") or [] if p]

    async def playlist_tracks(
        self, playlist_id: str, discord_user_id: int | None = None
    ) -> list[TrackInfo]:
        """Every track of a playlist (episodes and local files left out)."""
        pages = await self._pages(
            lambda sp: sp.playlist_items(playlist_id, limit=100, additional_types=("track",)),
            discord_user_id,
        )
        tracks = []
        for page in pages:
            for entry in page.get("items") or []:
                track = parse_track((entry or {}).get("item") or (entry or {}).get("track"))
                if track is not None:
                    tracks.append(track)
        return tracks

    async def _pages(self, first: Call[JSON | None], user_id: int | None) -> list[JSON]:
        """Follow `next` links; each page is its own call (limiter, refresh and all)."""

        async def fetch(call: Call[JSON | None]) -> JSON | None:
            if user_id is None:
                return await self._app(call)
            return (await self._user(user_id, call)).value

        pages: list[JSON] = []
        page = await fetch(first)
        while page:
            pages.append(page)
            if not page.get("next") or len(pages) >= 1000:
                break
            page = await fetch(_next_page(page))
        return pages


def _next_page(page: JSON) -> Call[JSON | None]:
    return lambda sp: sp.next(page)

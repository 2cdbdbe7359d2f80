"""SpotifyClient: the async face of the Spotify Web API for the rest of Game Night.

Every call: a token (the user's stored link, or the app's client-credentials token, fetched
at the call's priority), a slot from the app's limiter (Retry-After and the 30 s window), then
a place in the account's daily budget at the call's priority (`quota`, core/spotify/quota.py:
the one place every Spotify call of the process is counted, token calls included), then
spotipy in the bounded pool. The budget is spent last, so a call the limiter refuses never
goes out and costs nothing. A 401 refreshes the token (once, per
user, however many calls saw it) and retries once; a 429 holds the whole app for Retry-After;
everything else surfaces as the core.errors taxonomy. See docs/SPOTIFY_API.md for the contract.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import spotipy

from core.errors import (
    Forbidden,
    NotAllowlisted,
    NotFound,
    OwnerPremiumLapsed,
    PlaylistNotReadable,
    PremiumRequired,
    QuotaHeld,
    RateLimited,
    TokenExpired,
    Upstream,
)
from core.spotify.accounts import Accounts
from core.spotify.config import SpotifyConfig
from core.spotify.errors import (
    PLAYLIST_NOT_FOUND,
    PLAYLIST_NOT_READABLE,
    from_exception,
    quota_held,
)
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
from core.spotify.tokens import AppToken, RefreshLocks, UserTokens
from core.spotify.transport import SpotipyPool, Timed
from core.tracks import TrackInfo, is_track_id
from storage.base import CounterStore, LinkStore
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
        counters: CounterStore | None = None,
        locks: RefreshLocks | None = None,
        limiter: AppLimiter | None = None,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        """`counters`: where calls are counted and holds kept (the storage backend: persisted,
        shared by every process on it); None keeps them in this process's memory.
        `locks`: the per-user refresh lock (`StoreLocks(storage)` across processes); None is
        per process. `clock` is wall time (token expiry is stored); `timer` stamps each call's
        send and answer times, on the same monotonic clock as the sync engine."""
        self.config = config
        self._clock = clock
        self.quota = QuotaGovernor(
            config.daily_budget, window=config.budget_window, store=counters, clock=clock
        )
        self.accounts = Accounts(http, config, clock, gate=self)
        self.limiter = limiter or AppLimiter(
            config.rate_limit, config.rate_window, clock=clock, store=counters
        )
        self.timer = timer
        self.pool = SpotipyPool(
            config.api_base,
            max_workers=config.max_workers,
            call_timeout=config.call_timeout,
            socket_timeout=config.call_timeout + config.socket_grace,
            clock=timer,
        )
        self.tokens = UserTokens(
            links, self.accounts, margin=config.refresh_margin, clock=clock, locks=locks
        )
        self.app_token = AppToken(self.accounts, margin=config.refresh_margin, clock=clock)

    async def aclose(self) -> None:
        await self.tokens.aclose()
        self.pool.close()

    @property
    def blocked_for(self) -> float:
        """Seconds until calls may go out again: a Retry-After or a QUOTA_EXCEEDED hold (as
        this process last saw them; `quota.refresh()` re-reads the shared hold)."""
        held = self.quota.held_until()
        quota = max(0.0, held - self._clock()) if held is not None else 0.0
        return max(self.limiter.blocked_for, quota)

    # --- plumbing -------------------------------------------------------------------------

    async def _admit(self, priority: CallPriority) -> None:
        """Everything a call must pass before it goes out, cheapest refusal first; the
        budget is spent last, once nothing else can refuse the call."""
        self.quota.precheck(priority)
        await self.limiter.acquire(self.config.max_rate_wait)
        await self.quota.admit(priority)

    async def before_token_call(self, priority: CallPriority) -> None:
        """Accounts' gate: a token request is a Spotify call like any other."""
        await self._admit(priority)

    async def token_call_limited(self, error: RateLimited) -> RateLimited:
        return await self._rate_limited(error)

    async def _rate_limited(self, error: RateLimited) -> RateLimited:
        """Record a 429's hold; the error to raise (a QUOTA_EXCEEDED names the stored hold's
        end, which may be later than this answer's if another process saw a longer one)."""
        if isinstance(error, QuotaHeld):
            until = await self.quota.hold(error.resume_at)
            return error if until == error.resume_at else quota_held(until, self._clock())
        await self.limiter.hold(error.retry_after)
        return error

    async def _send(self, token: str, call: Call[T], priority: CallPriority) -> Timed[T]:
        await self._admit(priority)
        try:
            return await self.pool.call(token, call)
        except Exception as exc:
            error = from_exception(exc, now=self._clock())
            if error is None:
                raise
            if isinstance(error, RateLimited):
                error = await self._rate_limited(error)
            elif isinstance(error, Upstream):
                log.warning("Spotify call failed: %s", error.status or type(exc).__name__)
            raise error from exc

    async def _user(
        self,
        user_id: int,
        call: Call[T],
        command: bool = False,
        priority: CallPriority = CallPriority.COMMAND,
    ) -> Timed[T]:
        """A call with the user's token: one refresh and one retry on 401."""
        self.quota.precheck(priority)
        link = await self.tokens.current(user_id, priority)
        try:
            try:
                result = await self._send(link.access_token, call, priority)
            except TokenExpired:
                link = await self.tokens.refresh(user_id, link.access_token, priority)
                result = await self._send(link.access_token, call, priority)
        except PremiumRequired:
            await self.tokens.set_status(link, LinkStatus.PREMIUM_REQUIRED)
            raise
        if command and link.status == LinkStatus.PREMIUM_REQUIRED:
            # A player command went through, so the account has Premium now.
            await self.tokens.set_status(link, LinkStatus.OK)
        return result

    async def _app(self, call: Call[T], priority: CallPriority) -> T:
        self.quota.precheck(priority)
        token = await self.app_token.current(priority)
        try:
            return (await self._send(token, call, priority)).value
        except TokenExpired:
            token = await self.app_token.refresh(token, priority)
            return (await self._send(token, call, priority)).value

    # --- user calls -----------------------------------------------------------------------

    async def playback(
        self, discord_user_id: int, *, priority: CallPriority = CallPriority.COMMAND
    ) -> Playback | None:
        """The user's playback state; None when nothing is playing (204)."""
        result = await self._user(
            discord_user_id, lambda sp: sp.current_playback(), priority=priority
        )
        return parse_playback(result.value, result.sent_at, result.answered_at)

    async def play(
        self,
        discord_user_id: int,
        track_uri: str | None,
        position_ms: int | Callable[[], int] | None = None,
        device_id: str | None = None,
        *,
        priority: CallPriority = CallPriority.COMMAND,
    ) -> None:
        """Play `track_uri` from `position_ms`; track_uri None resumes what is loaded.

        Spotify may answer 202 while the device wakes up: the command was accepted and audio
        starts a moment later; reads can show the old state meanwhile (the engine allows
        for both). A callable `position_ms` is called in the worker thread right before the
        request is sent (the sync engine's position at that moment); what it raises, nothing
        is sent."""
        uris = [track_uri] if track_uri is not None else None
        await self._user(
            discord_user_id,
            lambda sp: sp.start_playback(
                device_id=device_id, uris=uris, position_ms=_position(position_ms)
            ),
            command=True,
            priority=priority,
        )

    async def pause(
        self,
        discord_user_id: int,
        device_id: str | None = None,
        *,
        priority: CallPriority = CallPriority.COMMAND,
        guard: Callable[[], None] | None = None,
    ) -> None:
        """Pause. `guard` is called in the worker thread right before the request is sent
        (the sync engine's fencing, as a callable position is for `play`); what it raises,
        nothing is sent."""

        def send(sp: spotipy.Spotify) -> None:
            if guard is not None:
                guard()
            sp.pause_playback(device_id)

        await self._user(discord_user_id, send, True, priority)

    async def seek(
        self,
        discord_user_id: int,
        position_ms: int | Callable[[], int],
        device_id: str | None = None,
        *,
        priority: CallPriority = CallPriority.COMMAND,
    ) -> None:
        await self._user(
            discord_user_id,
            lambda sp: sp.seek_track(_position(position_ms) or 0, device_id),
            True,
            priority,
        )

    async def next_track(
        self, discord_user_id: int, *, priority: CallPriority = CallPriority.COMMAND
    ) -> None:
        await self._user(discord_user_id, lambda sp: sp.next_track(), True, priority)

    async def devices(
        self, discord_user_id: int, *, priority: CallPriority = CallPriority.COMMAND
    ) -> list[Device]:
        result = await self._user(discord_user_id, lambda sp: sp.devices(), priority=priority)
        return [parse_device(d) for d in (result.value or {}).get("devices") or []]

    async def transfer(
        self,
        discord_user_id: int,
        device_id: str,
        play: bool = False,
        *,
        priority: CallPriority = CallPriority.COMMAND,
    ) -> None:
        await self._user(
            discord_user_id,
            lambda sp: sp.transfer_playback(device_id, force_play=play),
            command=True,
            priority=priority,
        )

    async def profile(
        self, discord_user_id: int, *, priority: CallPriority = CallPriority.COMMAND
    ) -> Profile:
        result = await self._user(discord_user_id, lambda sp: sp.me(), priority=priority)
        return self._profile(result.value)

    async def profile_with_token(
        self, access_token: str, *, priority: CallPriority = CallPriority.COMMAND
    ) -> Profile:
        """/v1/me with a token that is not stored yet (while linking)."""
        result = await self._send(access_token, lambda sp: sp.me(), priority)
        return self._profile(result.value)

    @staticmethod
    def _profile(data: JSON | None) -> Profile:
        if not data or not data.get("id"):
            raise Upstream("Spotify sent a profile we cannot read.")
        return Profile(id=str(data["id"]), display_name=str(data.get("display_name") or data["id"]))

    # --- catalog calls --------------------------------------------------------------------

    async def track(
        self, track_id: str, *, priority: CallPriority = CallPriority.COMMAND
    ) -> TrackInfo:
        if not is_track_id(track_id):
            raise NotFound("That is not a Spotify track id.")
        track = parse_track(await self._app(lambda sp: sp.track(track_id), priority))
        if track is None:
            raise NotFound("Spotify could not find that track.")
        return track

    async def user_playlists(
        self, discord_user_id: int, *, priority: CallPriority = CallPriority.BACKGROUND
    ) -> list[PlaylistRef]:
        """Owned, collaborative and followed playlists (not all readable: see PlaylistRef)."""
        pages = await self._pages(
            lambda sp: sp.current_user_playlists(limit=50), discord_user_id, priority
        )
        return [parse_playlist(p) for page in pages for p in page.get("items") or [] if p]

    async def playlist_tracks(
        self,
        playlist_id: str,
        discord_user_id: int | None = None,
        *,
        priority: CallPriority = CallPriority.BACKGROUND,
    ) -> list[TrackInfo]:
        """Every track of a playlist (episodes and local files left out).

        Development mode: only playlists the user owns or collaborates on (403, and always
        with the app token: PlaylistNotReadable); Spotify's own playlists answer 404."""
        try:
            pages = await self._pages(
                lambda sp: sp.playlist_items(playlist_id, limit=100, additional_types=("track",)),
                discord_user_id,
                priority,
            )
        except (PlaylistNotReadable, NotAllowlisted, OwnerPremiumLapsed):
            raise  # the app's or the user's standing, not this playlist's: their own message
        except Forbidden as exc:
            raise PlaylistNotReadable(PLAYLIST_NOT_READABLE) from exc
        except NotFound as exc:
            raise NotFound(PLAYLIST_NOT_FOUND) from exc
        tracks = []
        for page in pages:
            for entry in page.get("items") or []:
                track = parse_track((entry or {}).get("item") or (entry or {}).get("track"))
                if track is not None:
                    tracks.append(track)
        return tracks

    async def _pages(
        self, first: Call[JSON | None], user_id: int | None, priority: CallPriority
    ) -> list[JSON]:
        """Follow `next` links; each page is its own call (budget, limiter, refresh and all)."""

        async def fetch(call: Call[JSON | None]) -> JSON | None:
            if user_id is None:
                return await self._app(call, priority)
            return (await self._user(user_id, call, priority=priority)).value

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


def _position(position_ms: int | Callable[[], int] | None) -> int | None:
    """A command's position, computed now if it is a function (see `play`)."""
    if callable(position_ms):
        position_ms = position_ms()
    return max(0, int(position_ms)) if position_ms is not None else None

"""Domain errors. `UserFacingError.message` is safe to show a user (Discord or HTTP body).

One handler per surface turns these into an ephemeral reply or an HTTP response; anything that
is not a UserFacingError is logged with its traceback and answered with a generic message.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose message can be shown to the person who caused it."""

    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# The words for a storage outage, on every surface (Discord replies, HTTP bodies).
STORAGE_DOWN = "The bot's database isn't answering; your data is safe — try again in a minute."


# --- Spotify ---------------------------------------------------------------------------------


class SpotifyError(UserFacingError):
    """Base for errors from the Spotify Web API or accounts service."""

    http_status = 502


class Misconfigured(SpotifyError):
    """Spotify refused the app's own credentials (invalid_client): only the operator can fix it."""

    http_status = 503


class NotLinked(SpotifyError):
    """The user has no Spotify link stored."""

    http_status = 409


class TokenExpired(SpotifyError):
    """The access token was refused (401); refresh and retry once."""


class TokenRevoked(SpotifyError):
    """The refresh token is dead (invalid_grant): the user must run /link again."""


class ScopeMissing(TokenRevoked):
    """403 "Insufficient client scope": the link was granted fewer permissions than we use
    (an older link, or scopes added since); only a new /link grants them."""


class PremiumRequired(SpotifyError):
    """403 PREMIUM_REQUIRED: player commands need Spotify Premium."""


class NoActiveDevice(SpotifyError):
    """404 NO_ACTIVE_DEVICE: the account has no Spotify app open."""


class RestrictionViolated(SpotifyError):
    """403 'Restriction violated' (e.g. pausing an already paused player)."""


class NotFound(SpotifyError):
    http_status = 404


class RateLimited(SpotifyError):
    """429: every caller of this Spotify app waits `retry_after` seconds."""

    http_status = 503

    def __init__(self, message: str, retry_after: float, quota_exceeded: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.quota_exceeded = quota_exceeded


class QuotaHeld(RateLimited):
    """429 QUOTA_EXCEEDED: the developer account's quota is spent; every call waits until
    `resume_at` (wall-clock epoch), typically 13-15 h. The engine tells the host once.
    The message names the time as a `TimedText`, so Discord can show it in the reader's zone."""

    def __init__(self, message: str, resume_at: float, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after, quota_exceeded=True)
        self.resume_at = resume_at


class BudgetRefused(SpotifyError):
    """Our own budget keeps what is left for more important calls (see core.spotify.quota);
    nothing was sent. Deliberately NOT a RateLimited: Spotify did not refuse anything and no
    hold applies to other calls, so a caller skips this beat (and may try a more important
    call) instead of waiting out `retry_after`, which is only when the oldest counted call
    leaves the window (hours, on a daily budget)."""

    http_status = 503

    def __init__(self, message: str, priority: int, retry_after: float) -> None:
        super().__init__(message)
        self.priority = priority
        self.retry_after = retry_after


class NoSpotifyApp(SpotifyError):
    """A Spotify lookup on a server run without the Spotify app keys (optional since #16):
    nothing was sent. A 503, not a 4xx: the client did nothing wrong, this server cannot."""

    http_status = 503

    def __init__(self) -> None:
        super().__init__(
            "This server has no Spotify app configured, so it can only play tracks it has "
            "already found; send the track's title and artists (POST /song) instead."
        )


class Forbidden(SpotifyError):
    """403 for a reason the other errors do not name."""

    http_status = 403


class NotAllowlisted(Forbidden):
    """403 "User not registered in the Developer Dashboard": a development-mode app serves
    only the (at most 5) accounts its owner added under Users and Access."""


class OwnerPremiumLapsed(Forbidden):
    """Every call fails: the app owner's Spotify Premium lapsed (development mode needs it)."""


class PlaylistNotReadable(Forbidden):
    """Development mode reads only playlists the user owns or collaborates on."""


class Upstream(SpotifyError):
    """Spotify answered 5xx or did not answer in time."""

    def __init__(self, message: str, status: int | None = None, timeout: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.timeout = timeout
        self.http_status = 504 if timeout else 502


# --- Stream resolution -----------------------------------------------------------------------


class ResolveError(UserFacingError):
    """Base for stream-resolution failures."""

    http_status = 502


class NoMatch(ResolveError):
    """No YouTube video matches the track closely enough."""

    http_status = 404


class ExtractionFailed(ResolveError):
    """A video was found but yt-dlp could not produce a stream URL."""


class SearchFailed(ResolveError):
    """Every search backend failed (as opposed to answering that nothing matches)."""


class ResolveTimeout(ResolveError):
    http_status = 504


class Overloaded(UserFacingError):
    """Too many resolutions queued or a client over its rate limit."""

    http_status = 503

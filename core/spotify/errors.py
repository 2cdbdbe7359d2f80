"""Turn what spotipy and requests raise into the domain errors of core.errors.

Spotify's error bodies are `{"error": {"status", "message", "reason"?}}`; spotipy keeps the
status, `reason` and the message (prefixed with the URL) on SpotifyException.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import requests
from spotipy.exceptions import SpotifyException

from core.errors import (
    Forbidden,
    NoActiveDevice,
    NotAllowlisted,
    NotFound,
    OwnerPremiumLapsed,
    PremiumRequired,
    QuotaHeld,
    RateLimited,
    RestrictionViolated,
    ScopeMissing,
    SpotifyError,
    TokenExpired,
    Upstream,
)
from core.timetext import TimedText

# When a 429 comes without a usable Retry-After, wait this long rather than hammer.
DEFAULT_RETRY_AFTER = 5.0
SCOPE_RELINK = "Your Spotify link is missing a permission Game Night needs: run /link again."


def retry_after(headers: Mapping[str, str] | None) -> float:
    """Seconds from a Retry-After header (Spotify sends whole seconds)."""
    value = (headers or {}).get("Retry-After")
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_RETRY_AFTER


# Messages a user can act on (the operator is "the bot owner" to them).
NOT_ALLOWLISTED = (
    "This bot's Spotify app does not know your Spotify account yet: ask the bot owner to add "
    "it under Users and Access in the Spotify developer dashboard (at most 5 people per app), "
    "then try again."
)
OWNER_PREMIUM_LAPSED = (
    "Spotify has paused this bot: the Spotify account that owns its app needs an active "
    "Premium subscription. Ask the bot owner to renew it; it can take a few hours to work again."
)
PLAYLIST_NOT_READABLE = (
    "Spotify only lets this bot read playlists you own or collaborate on: copy the tracks into "
    "a playlist of your own, or ask its owner to make you a collaborator."
)

PLAYLIST_NOT_FOUND = (
    "Spotify could not find that playlist. Spotify's own playlists (editorial ones and mixes "
    "like Discover Weekly) cannot be read by bots since November 2024: copy the tracks into a "
    "playlist of your own."
)


QUOTA_HELD = "Spotify's daily quota for this bot is used up; Spotify calls resume at {time}."


def quota_held(resume_at: float, now: float) -> QuotaHeld:
    """The error for a QUOTA_EXCEEDED hold ending at `resume_at` (wall epoch); its message
    names that time (a TimedText: the bot shows it in each reader's own zone)."""
    return QuotaHeld(
        TimedText(QUOTA_HELD, resume_at, now), resume_at=resume_at, retry_after=resume_at - now
    )


def rate_limited(seconds: float, quota_exceeded: bool, now: float) -> RateLimited:
    """A 429's error; `now` is the caller's (injected) wall clock."""
    if quota_exceeded:
        return quota_held(now + seconds, now)
    return RateLimited(
        f"Spotify is busy; try again in {math.ceil(seconds)} s.", retry_after=seconds
    )


# The allowlist refusal comes in more than one wording, sometimes as a plain-text body:
# "User not registered in the Developer Dashboard" and "Check settings on
# developer.spotify.com/dashboard, the user may not be registered." (shared/REALITY.md).
_NOT_REGISTERED = re.compile(
    r"not\s+(?:be\s+)?registered|developer\.spotify\.com/dashboard", re.IGNORECASE
)


def not_registered(message: str) -> bool:
    """Whether a 403's message is the development-mode allowlist refusal."""
    return _NOT_REGISTERED.search(message) is not None


def from_status(
    status: int,
    message: str,
    reason: str = "",
    headers: Mapping[str, str] | None = None,
    *,
    now: float,
) -> SpotifyError:
    """The domain error for a Web API error answer."""
    text = message.lower()
    if status == 401:
        return TokenExpired("Your Spotify session expired; try again.")
    if status == 403 and "premium" in text and "owner" in text:
        return OwnerPremiumLapsed(OWNER_PREMIUM_LAPSED)
    if status == 403 and reason == "PREMIUM_REQUIRED":
        return PremiumRequired("Spotify Premium is needed to control playback.")
    if status == 403 and "insufficient client scope" in text:
        return ScopeMissing(SCOPE_RELINK)
    if status == 403 and "restriction violated" in text:
        return RestrictionViolated("Spotify refused that command for the current playback.")
    if status == 403 and not_registered(message):
        return NotAllowlisted(NOT_ALLOWLISTED)
    if status == 403:
        return Forbidden("Spotify refused that request.")
    if status == 404 and (reason == "NO_ACTIVE_DEVICE" or "no active device" in text):
        return NoActiveDevice("No active Spotify device: open Spotify on a phone or computer.")
    if status == 404:
        return NotFound("Spotify could not find that.")
    if status == 429:
        quota = reason == "QUOTA_EXCEEDED" or "quota" in text
        return rate_limited(retry_after(headers), quota, now)
    if status >= 500:
        return Upstream("Spotify is having trouble right now; try again shortly.", status=status)
    return SpotifyError(f"Spotify refused the request ({status}).")


def from_exception(exc: BaseException, *, now: float) -> SpotifyError | None:
    """The domain error for what a spotipy call raised; None if it is not Spotify's doing."""
    if isinstance(exc, SpotifyException):
        # spotipy prefixes the message with the URL and a newline.
        message = str(exc.msg or "").rpartition("\n")[2].strip()
        return from_status(exc.http_status, message, exc.reason or "", exc.headers, now=now)
    if isinstance(exc, requests.Timeout):
        return Upstream("Spotify did not answer in time.", timeout=True)
    if isinstance(exc, requests.RequestException):
        return Upstream("Spotify cannot be reached right now.")
    return None

"""Turn what spotipy and requests raise into the domain errors of core.errors.

Spotify's error bodies are `{"error": {"status", "message", "reason"?}}`; spotipy keeps the
status, `reason` and the message (prefixed with the URL) on SpotifyException.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import requests
from spotipy.exceptions import SpotifyException

from core.errors import (
    NoActiveDevice,
    NotFound,
    PremiumRequired,
    RateLimited,
    RestrictionViolated,
    ScopeMissing,
    SpotifyError,
    TokenExpired,
    Upstream,
)

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


def rate_limited(seconds: float, quota_exceeded: bool) -> RateLimited:
    what = "Spotify's quota for this bot is used up" if quota_exceeded else "Spotify is busy"
    return RateLimited(
        f"{what}; try again in {math.ceil(seconds)} s.",
        retry_after=seconds,
        quota_exceeded=quota_exceeded,
    )


def from_status(
    status: int, message: str, reason: str = "", headers: Mapping[str, str] | None = None
) -> SpotifyError:
    """The domain error for a Web API error answer."""
    text = message.lower()
    if status == 401:
        return TokenExpired("Your Spotify session expired; try again.")
    if status == 403 and reason == "PREMIUM_REQUIRED":
        return PremiumRequired("Spotify Premium is needed to control playback.")
    if status == 403 and "insufficient client scope" in text:
        return ScopeMissing(SCOPE_RELINK)
    if status == 403 and "restriction violated" in text:
        return RestrictionViolated("Spotify refused that command for the current playback.")
    if status == 404 and (reason == "NO_ACTIVE_DEVICE" or "no active device" in text):
        return NoActiveDevice("No active Spotify device: open Spotify on a phone or computer.")
    if status == 404:
        return NotFound("Spotify could not find that.")
    if status == 429:
        quota = reason == "QUOTA_EXCEEDED" or "quota" in text
        return rate_limited(retry_after(headers), quota)
    if status >= 500:
        return Upstream("Spotify is having trouble right now; try again shortly.", status=status)
    return SpotifyError(f"Spotify refused the request ({status}).")


def from_exception(exc: BaseException) -> SpotifyError | None:
    """The domain error for what a spotipy call raised; None if it is not Spotify's doing."""
    if isinstance(exc, SpotifyException):
        # spotipy prefixes the message with the URL and a newline.
        message = str(exc.msg or "").rpartition("\n")[2].strip()
        return from_status(exc.http_status, message, exc.reason or "", exc.headers)
    if isinstance(exc, requests.Timeout):
        return Upstream("Spotify did not answer in time.", timeout=True)
    if isinstance(exc, requests.RequestException):
        return Upstream("Spotify cannot be reached right now.")
    return None

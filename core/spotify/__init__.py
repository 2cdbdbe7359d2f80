"""The Spotify client layer: async calls over spotipy, tokens, limits and the error taxonomy."""

from core.spotify.client import SpotifyClient
from core.spotify.config import SCOPES, SpotifyConfig
from core.spotify.limiter import AppLimiter
from core.spotify.models import Device, Playback, PlaylistRef, Profile
from core.spotify.quota import CallPriority, QuotaGovernor, QuotaStatus
from core.spotify.tokens import StoreLocks

__all__ = [
    "SCOPES",
    "AppLimiter",
    "CallPriority",
    "Device",
    "Playback",
    "PlaylistRef",
    "Profile",
    "QuotaGovernor",
    "QuotaStatus",
    "SpotifyClient",
    "SpotifyConfig",
    "StoreLocks",
]

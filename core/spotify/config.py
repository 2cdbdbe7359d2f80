"""Configuration of the Spotify client layer; the composition root builds it from Settings."""

from __future__ import annotations

from dataclasses import dataclass, field

# What Game Night asks for: read and control playback, and read playlists for the indexer.
SCOPES = (
    "user-read-playback-state",
    "user-modify-playback-state",
    "user-read-currently-playing",
    "playlist-read-private",
)


@dataclass(frozen=True)
class SpotifyConfig:
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    api_base: str = "https://api.spotify.com"
    accounts_base: str = "https://accounts.spotify.com"
    scopes: tuple[str, ...] = SCOPES
    # Longest a caller waits for one Web API answer; the thread behind it is freed by the
    # socket timeout (call_timeout + socket_grace) at the latest.
    call_timeout: float = 5.0
    socket_grace: float = 1.0
    # Threads for spotipy. A hung call holds one until its socket times out, so this bounds
    # both concurrency and what hangs can take away (see transport.py).
    max_workers: int = 8
    # The app's own budget, kept under Spotify's (undocumented, ~rolling 30 s) limit.
    rate_limit: int = 150
    rate_window: float = 30.0
    # A caller waits at most this long for the limiter (Retry-After or budget) before it
    # gets RateLimited instead; the sync loop would rather skip a beat than stall.
    max_rate_wait: float = 5.0
    # The developer account's quota (core/spotify/quota.py): calls per rolling window, counted
    # across every process. Spotify publishes no number; accounts report running dry after
    # ~1,000-5,000 a day. 1,200 stays under the lowest reports: a 4-hour night with presence
    # (<=150/h: 600) fits with room for linking, /me and some indexing; without presence the
    # engine paces its polls to the budget (about 250/h over 4 h), not to 600/h.
    daily_budget: int = 1200
    budget_window: float = 24 * 3600.0
    # Refresh access tokens this long before they expire.
    refresh_margin: float = 60.0

"""The records storage keeps (DESIGN §3). Plain frozen dataclasses; times are Unix seconds.

They live in storage because storage is the bottom layer: core builds its domain on them and
bot shows them, and neither may be imported from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class LinkStatus(StrEnum):
    OK = "ok"
    NEEDS_RELINK = "needs_relink"  # refresh token revoked or expired (invalid_grant)
    PREMIUM_REQUIRED = "premium_required"  # learned from a 403 PREMIUM_REQUIRED answer


@dataclass(frozen=True)
class SpotifyLink:
    discord_user_id: int
    spotify_user_id: str
    display_name: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    scopes: tuple[str, ...]
    linked_at: float
    status: LinkStatus = LinkStatus.OK


@dataclass(frozen=True)
class OAuthState:
    state: str = field(repr=False)
    discord_user_id: int
    guild_id: int | None
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class PendingLink:
    """A finished Spotify authorization waiting for the person to confirm it on our page.

    Kept in storage (any web replica may receive the confirmation) under the hash of its
    OAuth state, encrypted whole (it carries the tokens), until `expires_at`.
    """

    state: str = field(repr=False)
    form_token: str = field(repr=False)  # the confirmation form must carry it (CSRF)
    expires_at: float
    link: SpotifyLink = field(repr=False)
    vouch: str | None = field(default=None, repr=False)  # the Discord OAuth state bound to it

    @property
    def discord_user_id(self) -> int:
        return self.link.discord_user_id

    @property
    def spotify_user_id(self) -> str:
        return self.link.spotify_user_id

    @property
    def spotify_name(self) -> str:
        return self.link.display_name


class PendingTaker(StrEnum):
    """Which button used a pending link up: the first press wins, the other is told so."""

    LINK = "link"
    CANCEL = "cancel"


@dataclass(frozen=True)
class PendingTake:
    pending: PendingLink | None  # set when this call took it
    taken_by: PendingTaker | None = None  # who had taken it before (None: unknown or expired)


class StateCheck(StrEnum):
    """What consuming an OAuth state found; lets the callback page say what went wrong."""

    OK = "ok"
    EXPIRED = "expired"
    USED = "used"
    UNKNOWN = "unknown"  # never issued (forged) or long gone


@dataclass(frozen=True)
class StateConsumption:
    check: StateCheck
    record: OAuthState | None = None  # set for OK and EXPIRED


class ListenerStatus(StrEnum):
    ATTACHED = "attached"
    DETACHED = "detached"  # paused or played something else on their own: not fought
    NO_DEVICE = "no_device"
    PREMIUM_REQUIRED = "premium_required"
    NEEDS_RELINK = "needs_relink"
    ERROR = "error"


@dataclass(frozen=True)
class ListenerState:
    user_id: int
    status: ListenerStatus = ListenerStatus.ATTACHED
    joined_at: float = 0.0
    updated_at: float = 0.0
    device_id: str | None = None
    detail: str = ""  # short, user-safe reason shown on the status message


@dataclass(frozen=True)
class HostSnapshot:
    """The host's playback as last observed. `at` is wall time at the request midpoint."""

    track_id: str | None
    position_ms: int
    is_playing: bool
    at: float
    duration_ms: int = 0
    device_id: str | None = None
    host_user_id: int | None = None  # whose player this was (None: written before it was kept)


@dataclass(frozen=True)
class Session:
    guild_id: int
    host_user_id: int
    created_at: float
    channel_id: int | None = None
    status_message_id: int | None = None
    snapshot: HostSnapshot | None = None
    listen_token: str | None = field(default=None, repr=False)
    host_active_at: float = 0.0  # last time the host was seen playing, for the idle timeout
    listeners: dict[int, ListenerState] = field(default_factory=dict)


@dataclass(frozen=True)
class CachedStream:
    track_id: str
    video_url: str
    stream_url: str
    expires_at: float  # from the stream URL's `expire` parameter, or a fallback TTL
    resolved_at: float
    last_access: float
    title: str = ""
    duration_s: float = 0.0
    score: float = 0.0
    # The request headers the stream URL was extracted with (yt-dlp's per-format `http_headers`:
    # User-Agent and friends): googlevideo refuses a URL fetched with another client's headers.
    http_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Failure:
    """Negative cache entry: resolution failed; do not retry before `retry_after`."""

    track_id: str
    reason: str
    retry_after: float


@dataclass(frozen=True)
class CounterHit:
    """A rolling-window counter after a hit (or a look): see storage.base.CounterStore."""

    recorded: bool
    count: int
    oldest: float | None  # epoch of the oldest hit still in the window


@dataclass(frozen=True)
class Hold:
    """Nothing goes out under `name` before `until` (epoch); `reason` says why."""

    until: float
    reason: str

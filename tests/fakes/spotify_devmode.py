"""The fake Spotify's development-mode rules: allowlist, the owner's Premium, playlist access.

Sources (shared/REALITY.md):
- Allowlist: "February 2026 Web API Dev Mode Changes - Migration Guide" and the docs page
  "Quota modes": at most 5 users per development-mode app, each added under *Users and Access*;
  "API requests with an access token associated to that user and app will receive a 403".
  Real clients see it in two wordings: "User not registered in the Developer Dashboard" and
  "Check settings on developer.spotify.com/dashboard, the user may not be registered.", the
  latter sometimes as a plain-text body rather than Spotify's JSON error (reports collected in
  shared/REALITY.md; spotipy and rspotify issue threads quote both).
- Owner Premium: "Quota modes": "The app owner must have a Spotify Premium account for apps in
  development mode to function" (enforced from 2026-03-09). Spotify still hands out tokens,
  then refuses every Web API call with 403 "Active premium subscription required for the owner
  of the app." (spotDL issue #2634; deemix-remastered v2.5.5 release notes). Status and body
  are configurable here because Spotify does not document them.
- Playlists: Spotify blog 2024-11-27 and the Feb 2026 changelog: playlist items only for
  playlists the user owns or collaborates on (403 otherwise, and with an app token);
  Spotify-owned editorial/algorithmic playlists answer 404.

    fake.devmode.allow("bob")                 # put an account on the default app's allowlist
    fake.devmode.disallow("bob")              # 403 on every Web API call of bob's tokens
    fake.devmode.owner_premium = False        # every call of the app fails (see above)
    fake.devmode.enforce_allowlist = False    # switch one rule off for a test
    fake.devmode.not_registered = MAY_NOT_BE_REGISTERED   # the other wording ...
    fake.devmode.not_registered_plain = True  # ... as a text/plain body
    fake.devmode.playlist_rules = False
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_USERS = 5
NOT_REGISTERED = "User not registered in the Developer Dashboard"
MAY_NOT_BE_REGISTERED = (
    "Check settings on developer.spotify.com/dashboard, the user may not be registered."
)
OWNER_LAPSED = "Active premium subscription required for the owner of the app."
EDITORIAL_OWNER = "spotify"


class DevModeRefusal(Exception):
    def __init__(
        self, status: int, message: str, reason: str | None = None, plain: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason
        self.plain = plain  # answer as a text/plain body, not Spotify's JSON error


@dataclass
class DevMode:
    enforce_allowlist: bool = True
    playlist_rules: bool = True
    owner_premium: bool = True
    owner_lapsed_status: int = 403
    owner_lapsed_message: str = OWNER_LAPSED
    owner_lapsed_reason: str | None = None
    max_users: int = MAX_USERS
    not_registered: str = NOT_REGISTERED
    not_registered_plain: bool = False
    allowlists: dict[str, set[str]] = field(default_factory=dict)
    default_app: str = ""

    def allow(self, account_id: str, app_id: str | None = None) -> bool:
        """Add to the app's allowlist; False when it already holds `max_users` accounts."""
        users = self.allowlists.setdefault(app_id or self.default_app, set())
        if account_id in users:
            return True
        if len(users) >= self.max_users:
            return False
        users.add(account_id)
        return True

    def disallow(self, account_id: str, app_id: str | None = None) -> None:
        self.allowlists.setdefault(app_id or self.default_app, set()).discard(account_id)

    def check_call(self, app_id: str, account_id: str | None) -> None:
        """Every Web API call: the owner's Premium first (the whole app), then the allowlist."""
        if not self.owner_premium:
            raise DevModeRefusal(
                self.owner_lapsed_status, self.owner_lapsed_message, self.owner_lapsed_reason
            )
        if (
            self.enforce_allowlist
            and account_id is not None
            and account_id not in self.allowlists.get(app_id, set())
        ):
            raise DevModeRefusal(403, self.not_registered, plain=self.not_registered_plain)

    def check_playlist_items(
        self, account_id: str | None, owner_id: str, collaborators: set[str]
    ) -> None:
        if not self.playlist_rules:
            return
        if owner_id == EDITORIAL_OWNER:
            raise DevModeRefusal(404, "Resource not found")
        if account_id is None or (account_id != owner_id and account_id not in collaborators):
            raise DevModeRefusal(403, "Forbidden")

"""Fake Spotify: accounts service and Web API on 127.0.0.1, for the REAL spotipy and our code.

One aiohttp server serves both hosts, so `fake.base` is the API base AND the accounts base:

    async with FakeSpotify() as fake:
        alice = fake.add_account("alice", "Alice")       # Premium, one active device
        bob = fake.add_account("bob", premium=False)     # 403 PREMIUM_REQUIRED on commands
        carol = fake.add_account("carol", devices=[])    # 404 NO_ACTIVE_DEVICE
        fake.app.client_id, fake.app.client_secret       # the default app's credentials
        sp = spotipy.Spotify(auth=fake.issue_tokens("alice").access_token)
        sp.prefix = fake.base + "/v1/"

Accounts service
  GET  /authorize     consent page (client_id, redirect_uri, state, scope, login_hint). An account
                      picker (preselected by login_hint) and "Agree"/"Cancel" buttons that POST to
  POST /authorize     which redirects to redirect_uri?code=..&state=.. or ?error=access_denied.
                      `await fake.consent(url, "alice")` does both steps over HTTP and returns
                      the redirect URL (agree=False for the deny path).
  POST /api/token     authorization_code, refresh_token and client_credentials grants; client
                      auth by Basic header or form fields; tokens live `token_lifetime` (3600 s);
                      `fake.rotate_refresh_tokens = True` returns a new refresh token on every
                      refresh and revokes the old one; revoked/unknown -> 400 invalid_grant.

Web API (under /v1): me, me/player (GET state, PUT transfer), me/player/currently-playing, play,
pause, seek, next, devices, tracks/{id}, me/playlists, playlists/{id}/items (and /tracks), with
paging (`next` URLs point back at the fake). JSON follows the official OpenAPI schema
(tests/fakes/test_spotify_schema.py checks every endpoint).

Simulated players (tests/fakes/spotify_catalog.py): each account's player advances on
`fake.clock` (default time.time), moves to the next queued track at the end, stops after the last.
  fake.player("alice").now()   -> PlayerSnapshot(track_id, position_ms, is_playing, device_id, at)
  fake.player("alice").load([t.id for t in fake.catalog[:3]], position_ms=10_000)
Real behaviour modelled: pause when paused / resume when playing -> 403 "Restriction violated";
a restricted device refuses commands the same way; GET me/player is 204 with no active device;
player commands need scopes (403 "Insufficient client scope"); `timestamp` is the last change.
/authorize approves a returning signed-in account (`fake.signed_in`, set by Agree) without a
consent page unless the URL carries show_dialog=true (Spotify's authorization guide).

Development-mode realism (each ON by default, switchable per test; sources in each module)
  fake.quota    tests/fakes/spotify_quota.py    per-developer-account call budget; past it every
                                                Web API and token call: 429 QUOTA_EXCEEDED
  fake.devmode  tests/fakes/spotify_devmode.py  allowlist (5 per app, a 6th add_account
                                                raises; allowlisted=False), owner Premium,
                                                playlist rules
  fake.lag      tests/fakes/spotify_lag.py      read lag after commands, 202 while a device
                                                wakes, start-up delay; fake.lag.off()

Controls
  fake.set_latency(0.08, jitter=0.04)  every request: uniform in [mean-jitter, mean+jitter],
                                       half before the handler runs, half after (a round trip)
  fake.fail(429, retry_after=2, quota=True, path="/v1/me/player", times=1) -> Fault
  fake.fail(403, reason="PREMIUM_REQUIRED"); fake.fail(503); fake.hang(path=..., seconds=30)
                                       faults match method/path prefix/account; `times=None`
                                       is forever; `fault.hits` counts uses; stop() ends hangs.
  fake.app.rate_limit = 100            per-app budget in a rolling `fake.app.rate_window` (30 s):
                                       the call over it gets 429 + Retry-After
  fake.expire_access_tokens("alice"); fake.revoke_refresh_tokens("alice")
  fake.refresh_token_valid(token)      false once rotated or revoked
  fake.log                             every request: RequestRecord(method, path, query, body,
                                       account_id, app_id, status, received_at, answered_at) with
                                       times from time.monotonic(), plus the response JSON
  fake.count(path="/v1/me/player/play", account="alice", method="PUT"); fake.calls_in_window(app)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import json
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp import web

from tests.fakes.spotify_catalog import (
    FakeAccount,
    FakeDevice,
    FakePlayer,
    FakePlaylist,
    FakeTrack,
    make_catalog,
    make_id,
)
from tests.fakes.spotify_devmode import DevMode, DevModeRefusal
from tests.fakes.spotify_lag import PlayerLag
from tests.fakes.spotify_quota import DEFAULT_DEVELOPER, QUOTA_MESSAGE, DevQuota, QuotaExceeded

ALL_SCOPES = (
    "user-read-playback-state",
    "user-modify-playback-state",
    "user-read-currently-playing",
    "playlist-read-private",
)
READ_PLAYBACK = "user-read-playback-state"
MODIFY_PLAYBACK = "user-modify-playback-state"
JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeApp:
    """A registered Spotify application (one client id)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()  # empty: any redirect URI is accepted
    rate_limit: int | None = None  # calls per rate_window; None: unlimited
    rate_window: float = 30.0
    calls: deque[float] = field(default_factory=deque)  # monotonic send times, for the window
    developer: str = DEFAULT_DEVELOPER  # the developer account whose quota the app spends


@dataclass
class Grant:
    app_id: str
    account_id: str | None  # None: client-credentials (app) token
    scopes: frozenset[str]
    expires_at: float


@dataclass
class RefreshGrant:
    app_id: str
    account_id: str
    scopes: frozenset[str]
    revoked: bool = False


@dataclass
class AuthCode:
    app_id: str
    account_id: str
    redirect_uri: str
    scopes: frozenset[str]
    expires_at: float


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: float
    scopes: tuple[str, ...]


@dataclass
class Fault:
    """A forced answer for matching requests. status None with hang: stall, then answer normally."""

    status: int | None
    method: str | None = None
    path: str | None = None  # prefix of the request path, e.g. "/v1/me/player"
    account: str | None = None
    times: int | None = 1  # None: forever
    retry_after: float | None = None
    reason: str | None = None
    message: str | None = None
    hang: float | None = None
    hits: int = 0

    def matches(self, method: str, path: str, account: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return (
            (self.method is None or self.method == method)
            and (self.path is None or path.startswith(self.path))
            and (self.account is None or self.account == account)
        )


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    account_id: str | None
    app_id: str | None
    received_at: float  # time.monotonic()
    status: int = 0
    answered_at: float = 0.0
    response: Any = None  # the JSON answered, if any
    port: int = 0  # the fake's port it came in on: which client sent it (`another_base`)


_DEFAULT_MESSAGES = {
    400: "Bad request",
    401: "The access token expired",
    403: "Player command failed: Restriction violated",
    404: "Player command failed: No active device found",
    429: "API rate limit exceeded",
    500: "Server error",
    502: "Bad gateway",
    503: "Service unavailable",
}
_DEFAULT_REASONS = {403: "UNKNOWN", 404: "NO_ACTIVE_DEVICE"}


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, reason: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason, self.retry_after = (
            status,
            message,
            reason,
            retry_after,
        )


def restriction() -> ApiError:
    return ApiError(403, "Player command failed: Restriction violated", "UNKNOWN")


class FakeSpotify:
    """See the module docstring for the whole control API."""

    def __init__(
        self,
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        catalog: list[FakeTrack] | None = None,
        clock: Callable[[], float] = time.time,
        seed: int = 7,
    ) -> None:
        self.clock = clock
        # Realism, each ON by default and switchable per test (see each module's docstring).
        self.quota = DevQuota(clock)
        self.devmode = DevMode(default_app=client_id)
        self.lag = PlayerLag(clock)
        self.catalog = catalog if catalog is not None else make_catalog(seed=seed)
        self.tracks = {t.id: t for t in self.catalog}
        self.apps: dict[str, FakeApp] = {}
        self.app = self.add_app(client_id, client_secret)
        self.accounts: dict[str, FakeAccount] = {}
        self.playlists: dict[str, FakePlaylist] = {}
        self.token_lifetime = 3600
        self.rotate_refresh_tokens = False
        self.log: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.latency = (0.0, 0.0)
        self._access: dict[str, Grant] = {}
        self._refresh: dict[str, RefreshGrant] = {}
        self._codes: dict[str, AuthCode] = {}
        # (hostile, #13) The browser's Spotify session: a signed-in account that approved an
        # app before is approved again WITHOUT a consent page unless the authorize URL says
        # show_dialog=true (Spotify authorization guide). Set by Agree, like the real cookie.
        self.signed_in: str | None = None
        self.approved: set[tuple[str, str]] = set()  # (client id, account id)
        self._rng = random.Random(seed)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifetime -------------------------------------------------------------------------

    async def start(self) -> FakeSpotify:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/authorize", self._authorize_page)
        app.router.add_post("/authorize", self._authorize_decision)
        app.router.add_post("/api/token", self._token)
        app.router.add_get("/image/{seed}", self._image_file)
        api = [
            ("GET", "/v1/me", self._me),
            ("GET", "/v1/me/player", self._player_state),
            ("PUT", "/v1/me/player", self._transfer),
            ("GET", "/v1/me/player/currently-playing", self._currently_playing),
            ("GET", "/v1/me/player/devices", self._devices),
            ("PUT", "/v1/me/player/play", self._play),
            ("PUT", "/v1/me/player/pause", self._pause),
            ("PUT", "/v1/me/player/seek", self._seek),
            ("POST", "/v1/me/player/next", self._next),
            ("GET", "/v1/tracks/{id}", self._track),
            ("GET", "/v1/me/playlists", self._my_playlists),
            ("GET", "/v1/playlists/{id}/items", self._playlist_items),
            ("GET", "/v1/playlists/{id}/tracks", self._playlist_items),
        ]
        for method, path, handler in api:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, path + "/", handler)  # spotipy calls "me/"
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def another_base(self) -> str:
        """The same fake on one more port: give each process its own to tell whose calls are
        whose (`RequestRecord.port`; real Spotify sees one app, and so does this fake)."""
        assert self._runner is not None, "start() first"
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[-1][1]}"

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSpotify:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- world set-up ---------------------------------------------------------------------

    def add_app(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: Iterable[str] = (),
        rate_limit: int | None = None,
    ) -> FakeApp:
        app = FakeApp(client_id, client_secret, tuple(redirect_uris), rate_limit)
        self.apps[client_id] = app
        return app

    def add_account(
        self,
        account_id: str,
        display_name: str | None = None,
        *,
        premium: bool = True,
        devices: list[FakeDevice] | None = None,
        active: bool = True,
        allowlisted: bool = True,
    ) -> FakeAccount:
        """An account with one device (active unless active=False), or the devices given.
        `allowlisted`: put it on the default app's allowlist. At most 5 fit, as on Spotify: a
        6th raises (pass allowlisted=False, or switch the rule off with
        `fake.devmode.enforce_allowlist = False` first, saying why)."""
        if allowlisted and not self.devmode.allow(account_id) and self.devmode.enforce_allowlist:
            raise ValueError(
                f"cannot allowlist {account_id!r}: a development-mode app holds at most "
                f"{self.devmode.max_users} users (Spotify's rule)"
            )
        if devices is None:
            devices = [FakeDevice(id=make_id(self._rng, 40).lower(), name=f"{account_id}'s laptop")]
        player = FakePlayer(self.tracks, self.clock)
        if active and devices:
            player.device_id = devices[0].id
        name = display_name or account_id.title()
        account = FakeAccount(account_id, name, player, premium, devices)
        self.accounts[account_id] = account
        return account

    def player(self, account_id: str) -> FakePlayer:
        return self.accounts[account_id].player

    def add_playlist(
        self,
        owner_id: str,
        name: str,
        track_ids: list[str],
        public: bool = False,
        *,
        collaborators: Iterable[str] = (),
        followers: Iterable[str] = (),
    ) -> FakePlaylist:
        """owner_id "spotify" makes an editorial playlist (404 for dev-mode apps)."""
        playlist = FakePlaylist(make_id(self._rng), name, owner_id, list(track_ids), public)
        playlist.collaborators = set(collaborators)
        playlist.collaborative = bool(playlist.collaborators)
        playlist.followers = set(followers)
        self.playlists[playlist.id] = playlist
        return playlist

    # --- tokens ---------------------------------------------------------------------------

    def issue_tokens(
        self, account_id: str, app_id: str | None = None, scopes: Iterable[str] = ALL_SCOPES
    ) -> TokenPair:
        """Tokens as if the account had linked: for tests that do not need the OAuth dance."""
        app = app_id or self.app.client_id
        scope_set = frozenset(scopes)
        access = self._new_access(app, account_id, scope_set)
        refresh = "rt_" + secrets.token_urlsafe(24)
        self._refresh[refresh] = RefreshGrant(app, account_id, scope_set)
        return TokenPair(access, refresh, self._access[access].expires_at, tuple(sorted(scope_set)))

    def expire_access_tokens(self, account_id: str | None = None) -> None:
        """Every access token of the account (or every app token with None) now answers 401."""
        for grant in self._access.values():
            if grant.account_id == account_id:
                grant.expires_at = self.clock() - 1

    def revoke_refresh_tokens(self, account_id: str) -> None:
        for grant in self._refresh.values():
            if grant.account_id == account_id:
                grant.revoked = True

    def refresh_token_valid(self, refresh_token: str) -> bool:
        """Would the token endpoint still accept it (false once rotated or revoked)?"""
        grant = self._refresh.get(refresh_token)
        return grant is not None and not grant.revoked

    def _new_access(self, app_id: str, account_id: str | None, scopes: frozenset[str]) -> str:
        token = "at_" + secrets.token_urlsafe(24)
        self._access[token] = Grant(app_id, account_id, scopes, self.clock() + self.token_lifetime)
        return token

    # --- controls -------------------------------------------------------------------------

    def set_latency(self, mean: float, jitter: float = 0.0) -> None:
        self.latency = (mean, jitter)

    def fail(
        self,
        status: int,
        *,
        method: str | None = None,
        path: str | None = None,
        account: str | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
        quota: bool = False,
        reason: str | None = None,
        message: str | None = None,
    ) -> Fault:
        """Answer matching requests with `status` (and Spotify's error body) instead."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if quota:
            reason = "QUOTA_EXCEEDED"
        if reason == "PREMIUM_REQUIRED" and message is None:
            message = "Player command failed: Premium required"
        fault = Fault(status, method, path, account, times, retry_after, reason, message)
        self.faults.append(fault)
        return fault

    def hang(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        account: str | None = None,
        seconds: float = 30.0,
        times: int | None = 1,
    ) -> Fault:
        """Stall matching requests for `seconds` (stop() releases them) before answering."""
        fault = Fault(None, method, path, account, times, hang=seconds)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def count(
        self, path: str | None = None, *, account: str | None = None, method: str | None = None
    ) -> int:
        """Requests received whose path starts with `path` (exactly equal when it ends in '$')."""
        return len(self.requests(path, account=account, method=method))

    def requests(
        self, path: str | None = None, *, account: str | None = None, method: str | None = None
    ) -> list[RequestRecord]:
        def hit(r: RequestRecord) -> bool:
            if path is not None:
                ok = r.path == path[:-1] if path.endswith("$") else r.path.startswith(path)
                if not ok:
                    return False
            return (account is None or r.account_id == account) and (
                method is None or r.method == method
            )

        return [r for r in self.log if hit(r)]

    def calls_in_window(self, app_id: str | None = None) -> int:
        app = self.apps[app_id or self.app.client_id]
        self._trim_window(app, time.monotonic())
        return len(app.calls)

    async def consent(self, authorize_url: str, account_id: str, agree: bool = True) -> str:
        """Act as the user's browser: open the consent page, pick the account, press a button.

        Returns the URL the browser would be redirected to (the app's callback)."""
        async with aiohttp.ClientSession() as http:
            async with http.get(authorize_url) as page:
                text = await page.text()
                if page.status != 200:
                    raise AssertionError(f"consent page answered {page.status}: {text}")
            query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
            form = {
                "client_id": query.get("client_id", ""),
                "redirect_uri": query.get("redirect_uri", ""),
                "state": query.get("state", ""),
                "scope": query.get("scope", ""),
                "account": account_id,
                "decision": "agree" if agree else "cancel",
            }
            async with http.post(self.base + "/authorize", data=form, allow_redirects=False) as r:
                if r.status != 302:
                    raise AssertionError(f"consent answered {r.status}: {await r.text()}")
                return r.headers["Location"]

    # --- plumbing -------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body: Any = None
        raw = await request.read()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        grant = self._bearer(request)
        record = RequestRecord(
            request.method,
            request.path.rstrip("/") or "/",  # spotipy asks for "me/"
            dict(request.query),
            body,
            grant.account_id if grant else None,
            grant.app_id if grant else None,
            time.monotonic(),
        )
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        record.port = sockname[1] if sockname else 0
        self.log.append(record)
        half = self._latency() / 2
        if half:
            await asyncio.sleep(half)
        response = await self._answer(request, handler, record, grant)
        if half:
            await asyncio.sleep(half)
        record.status, record.answered_at = response.status, time.monotonic()
        if isinstance(response, web.Response) and response.content_type == "application/json":
            record.response = json.loads(response.text or "null")
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, record: RequestRecord, grant: Grant | None
    ) -> web.StreamResponse:
        fault = next(
            (f for f in self.faults if f.matches(request.method, record.path, record.account_id)),
            None,
        )
        if fault is not None:
            fault.hits += 1
            if fault.hang is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), fault.hang)
            if fault.status is not None:
                return self._error(
                    ApiError(
                        fault.status,
                        fault.message or _DEFAULT_MESSAGES.get(fault.status, "Error"),
                        # reason="" asks for no reason at all
                        _DEFAULT_REASONS.get(fault.status)
                        if fault.reason is None
                        else fault.reason,
                        fault.retry_after,
                    )
                )
        if request.path.startswith("/v1/"):
            try:
                self._check_rate(grant)
                if grant is None:
                    auth = request.headers.get("Authorization", "")
                    message = "Invalid access token" if auth else "No token provided"
                    raise ApiError(401, message)
                if grant.expires_at <= self.clock():
                    raise ApiError(401, "The access token expired")
                self._dev_checks(grant)
                return await handler(request)
            except ApiError as exc:
                return self._error(exc)
            except DevModeRefusal as exc:
                if exc.plain:
                    return web.Response(status=exc.status, text=exc.message)
                return self._error(ApiError(exc.status, exc.message, exc.reason))
        return await handler(request)

    def _latency(self) -> float:
        mean, jitter = self.latency
        return max(0.0, self._rng.uniform(mean - jitter, mean + jitter)) if mean or jitter else 0.0

    def _bearer(self, request: web.Request) -> Grant | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return self._access.get(auth.removeprefix("Bearer "))

    def _trim_window(self, app: FakeApp, now: float) -> None:
        while app.calls and app.calls[0] <= now - app.rate_window:
            app.calls.popleft()

    def _check_rate(self, grant: Grant | None) -> None:
        if grant is None:
            return
        app = self.apps[grant.app_id]
        now = time.monotonic()
        self._trim_window(app, now)
        if app.rate_limit is not None and len(app.calls) >= app.rate_limit:
            wait = app.calls[0] + app.rate_window - now
            raise ApiError(429, "API rate limit exceeded", retry_after=max(1, math.ceil(wait)))
        app.calls.append(now)

    def _charge_quota(self, app_id: str) -> None:
        try:
            self.quota.charge(self.apps[app_id].developer)
        except QuotaExceeded as exc:
            raise ApiError(429, QUOTA_MESSAGE, "QUOTA_EXCEEDED", exc.retry_after) from None

    def _dev_checks(self, grant: Grant) -> None:
        """Development-mode quota, the owner's Premium and the allowlist, on every call."""
        self._charge_quota(grant.app_id)
        self.devmode.check_call(grant.app_id, grant.account_id)

    @staticmethod
    def _json(data: JSON, status: int = 200) -> web.Response:
        return web.Response(status=status, text=json.dumps(data), content_type="application/json")

    def _error(self, exc: ApiError) -> web.Response:
        error: JSON = {"status": exc.status, "message": exc.message}
        if exc.reason:
            error["reason"] = exc.reason
        response = self._json({"error": error}, exc.status)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(math.ceil(exc.retry_after))
        return response

    # --- accounts service -----------------------------------------------------------------

    def _check_client(self, client_id: str, redirect_uri: str) -> str | None:
        app = self.apps.get(client_id)
        if app is None:
            return "INVALID_CLIENT: Invalid client"
        if app.redirect_uris and redirect_uri not in app.redirect_uris:
            return "INVALID_CLIENT: Invalid redirect URI"
        return None

    async def _authorize_page(self, request: web.Request) -> web.Response:
        q = request.query
        problem = self._check_client(q.get("client_id", ""), q.get("redirect_uri", ""))
        if problem is None and q.get("response_type") != "code":
            problem = "unsupported_response_type"
        if problem is not None:
            return web.Response(status=400, text=problem)
        returning = self.signed_in is not None and (q["client_id"], self.signed_in) in self.approved
        if returning and q.get("show_dialog") != "true":
            assert self.signed_in is not None
            scopes = frozenset(q.get("scope", "").split())
            return self._redirect_with_code(
                q["client_id"], self.signed_in, q["redirect_uri"], scopes, q.get("state", "")
            )
        hint = q.get("login_hint", "")
        options = "".join(
            f'<option value="{html.escape(a.id)}"{" selected" if a.id == hint else ""}>'
            f"{html.escape(a.display_name)} ({html.escape(a.id)})</option>"
            for a in self.accounts.values()
        )
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(q.get(name, ""))}">'
            for name in ("client_id", "redirect_uri", "state", "scope")
        )
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in q.get("scope", "").split())
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Fake Spotify – Authorize</title></head>
<body><h1>Connect to {html.escape(q["client_id"])}</h1>
<p>This app will be able to:</p><ul id="scopes">{scopes}</ul>
<form method="post" action="/authorize">{hidden}
<label>Account <select name="account" id="account">{options}</select></label>
<button type="submit" name="decision" value="agree" id="agree">Agree</button>
<button type="submit" name="decision" value="cancel" id="cancel">Cancel</button>
</form></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _authorize_decision(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, redirect_uri = str(form.get("client_id", "")), str(form.get("redirect_uri", ""))
        problem = self._check_client(client_id, redirect_uri)
        if problem is not None:
            return web.Response(status=400, text=problem)
        account_id = str(form.get("account", ""))
        state = str(form.get("state", ""))
        if form.get("decision") == "agree":
            if account_id not in self.accounts:
                return web.Response(status=400, text="pick an account")
            self.signed_in = account_id
            self.approved.add((client_id, account_id))
            scopes = frozenset(str(form.get("scope", "")).split())
            return self._redirect_with_code(client_id, account_id, redirect_uri, scopes, state)
        return self._redirect(redirect_uri, {"error": "access_denied"}, state)

    def _redirect_with_code(
        self, client_id: str, account_id: str, redirect_uri: str, scopes: frozenset[str], state: str
    ) -> web.Response:
        code = "code_" + secrets.token_urlsafe(24)
        self._codes[code] = AuthCode(
            client_id, account_id, redirect_uri, scopes, self.clock() + 600
        )
        return self._redirect(redirect_uri, {"code": code}, state)

    @staticmethod
    def _redirect(redirect_uri: str, params: dict[str, str], state: str) -> web.Response:
        if state:
            params["state"] = state
        sep = "&" if "?" in redirect_uri else "?"
        location = redirect_uri + sep + urlencode(params)
        return web.Response(status=302, headers={"Location": location})

    def _client_from(self, request: web.Request, form: dict[str, str]) -> FakeApp | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, secret):
            return None
        return app

    @staticmethod
    def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
        return FakeSpotify._json({"error": error, "error_description": description}, status)

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        app = self._client_from(request, form)
        if app is None:
            return self._oauth_error("invalid_client", "Invalid client")
        try:
            self._charge_quota(app.client_id)  # the token endpoint spends the quota too
        except ApiError as exc:
            return self._error(exc)
        grant_type = form.get("grant_type")
        body: JSON = {"token_type": "Bearer", "expires_in": self.token_lifetime}
        if grant_type == "client_credentials":
            body["access_token"] = self._new_access(app.client_id, None, frozenset())
            return self._json(body)
        if grant_type == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or code.app_id != app.client_id:
                return self._oauth_error("invalid_grant", "Invalid authorization code")
            if code.expires_at <= self.clock():
                return self._oauth_error("invalid_grant", "Authorization code expired")
            if code.redirect_uri != form.get("redirect_uri"):
                return self._oauth_error("invalid_grant", "Invalid redirect URI")
            refresh = "rt_" + secrets.token_urlsafe(24)
            self._refresh[refresh] = RefreshGrant(app.client_id, code.account_id, code.scopes)
            body["access_token"] = self._new_access(app.client_id, code.account_id, code.scopes)
            body["refresh_token"] = refresh
            body["scope"] = " ".join(sorted(code.scopes))
            return self._json(body)
        if grant_type == "refresh_token":
            old = form.get("refresh_token", "")
            grant = self._refresh.get(old)
            if grant is None or grant.revoked or grant.app_id != app.client_id:
                return self._oauth_error("invalid_grant", "Refresh token revoked")
            body["access_token"] = self._new_access(app.client_id, grant.account_id, grant.scopes)
            body["scope"] = " ".join(sorted(grant.scopes))
            if self.rotate_refresh_tokens:
                new = "rt_" + secrets.token_urlsafe(24)
                self._refresh[new] = RefreshGrant(app.client_id, grant.account_id, grant.scopes)
                grant.revoked = True
                body["refresh_token"] = new
            return self._json(body)
        return self._oauth_error("unsupported_grant_type", f"grant_type {grant_type!r}")

    # --- Web API: helpers -----------------------------------------------------------------

    def _user(self, request: web.Request, scope: str | None = None) -> FakeAccount:
        grant = self._bearer(request)
        assert grant is not None  # the middleware answered 401 otherwise
        if grant.account_id is None:
            raise ApiError(401, "Valid user authentication required")
        if scope is not None and scope not in grant.scopes:
            raise ApiError(403, "Insufficient client scope")
        return self.accounts[grant.account_id]

    def _commandable(self, request: web.Request, device_id: str | None) -> FakeAccount:
        """The account behind a player command, after Spotify's checks in Spotify's order."""
        account = self._user(request, MODIFY_PLAYBACK)
        if not account.premium:
            raise ApiError(403, "Player command failed: Premium required", "PREMIUM_REQUIRED")
        if device_id is not None:
            device = account.device(device_id)
            if device is None:
                raise ApiError(404, "Device not found")
        else:
            device = account.active_device
            if device is None:
                message = "Player command failed: No active device found"
                raise ApiError(404, message, "NO_ACTIVE_DEVICE")
        if device.is_restricted:
            raise restriction()
        return account

    async def _image_file(self, request: web.Request) -> web.Response:
        """Album art, like i.scdn.co: a generated SVG whose colours depend on the seed, so
        browser pages showing art (the listen page) load it without leaving loopback."""
        digest = hashlib.sha256(request.match_info["seed"].encode()).hexdigest()
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="640">'
            f'<rect width="640" height="640" fill="#{digest[:6]}"/>'
            f'<circle cx="320" cy="320" r="220" fill="#{digest[6:12]}"/>'
            '<circle cx="320" cy="320" r="40" fill="#121212"/></svg>'
        )
        return web.Response(text=svg, content_type="image/svg+xml")

    def _image(self, seed: str) -> JSON:
        return {"url": f"{self.base}/image/{seed}", "height": 640, "width": 640}

    def _artist(self, name: str, artist_id: str) -> JSON:
        return {
            "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"},
            "href": f"{self.base}/v1/artists/{artist_id}",
            "id": artist_id,
            "name": name,
            "type": "artist",
            "uri": f"spotify:artist:{artist_id}",
        }

    def track_json(self, track: FakeTrack) -> JSON:
        """A TrackObject as the Web API returns it."""
        artists = [self._artist(n, i) for n, i in zip(track.artists, track.artist_ids, strict=True)]
        album = {
            "album_type": "album",
            "total_tracks": 10,
            "available_markets": ["DE", "US"],
            "external_urls": {"spotify": f"https://open.spotify.com/album/{track.album_id}"},
            "href": f"{self.base}/v1/albums/{track.album_id}",
            "id": track.album_id,
            "images": [self._image(track.album_id)],
            "name": track.album,
            "release_date": "2024-05-17",
            "release_date_precision": "day",
            "type": "album",
            "uri": f"spotify:album:{track.album_id}",
            "artists": artists,
        }
        return {
            "album": album,
            "artists": artists,
            "available_markets": ["DE", "US"],
            "disc_number": 1,
            "duration_ms": track.duration_ms,
            "explicit": False,
            "external_ids": {"isrc": track.isrc},
            "external_urls": {"spotify": f"https://open.spotify.com/track/{track.id}"},
            "href": f"{self.base}/v1/tracks/{track.id}",
            "id": track.id,
            "is_local": False,
            "is_playable": True,
            "name": track.name,
            "popularity": 50,
            "preview_url": None,
            "track_number": 1,
            "type": "track",
            "uri": track.uri,
        }

    @staticmethod
    def _device_json(device: FakeDevice, active: bool) -> JSON:
        return {
            "id": device.id,
            "is_active": active,
            "is_private_session": False,
            "is_restricted": device.is_restricted,
            "name": device.name,
            "type": device.type,
            "volume_percent": device.volume_percent,
            "supports_volume": True,
        }

    def _paging(self, request: web.Request, items: list[JSON], max_limit: int) -> JSON:
        try:
            limit = int(request.query.get("limit", "20"))
            offset = int(request.query.get("offset", "0"))
        except ValueError as exc:
            raise ApiError(400, "Invalid limit or offset") from exc
        if not 1 <= limit <= max_limit or offset < 0:
            raise ApiError(400, f"Invalid limit: must be 1..{max_limit}")

        def page_url(at: int) -> str:
            return f"{self.base}{request.path}?{urlencode({'offset': at, 'limit': limit})}"

        return {
            "href": page_url(offset),
            "items": items[offset : offset + limit],
            "limit": limit,
            "next": page_url(offset + limit) if offset + limit < len(items) else None,
            "offset": offset,
            "previous": page_url(max(0, offset - limit)) if offset > 0 else None,
            "total": len(items),
        }

    # --- Web API: handlers ----------------------------------------------------------------

    async def _me(self, request: web.Request) -> web.Response:
        account = self._user(request)
        return self._json(
            {
                "display_name": account.display_name,
                "external_urls": {"spotify": f"https://open.spotify.com/user/{account.id}"},
                "href": f"{self.base}/v1/users/{account.id}",
                "id": account.id,
                "images": [],
                "type": "user",
                "uri": f"spotify:user:{account.id}",
            }
        )

    def _playing_json(self, account: FakeAccount, with_device: bool) -> JSON | None:
        player = self.lag.view(account)  # the old state for a while after a command
        snapshot = player.now()
        device = account.device(player.device_id) if player.device_id else None
        if device is None or snapshot.track_id is None:
            return None
        body: JSON = {
            "timestamp": int(player.changed_at * 1000),
            "progress_ms": snapshot.position_ms,
            "is_playing": snapshot.is_playing,
            "item": self.track_json(self.tracks[snapshot.track_id]),
            "currently_playing_type": "track",
            # Real shape: {"disallows": {...}} (spotify/web-api #1515), and `context` always
            # present, an object or null.
            "actions": {
                "disallows": {"pausing": not snapshot.is_playing, "resuming": snapshot.is_playing}
            },
            "context": None,
        }
        if player.context_uri:
            _, kind, ident = player.context_uri.split(":", 2)
            body["context"] = {
                "type": kind,
                "href": f"{self.base}/v1/{kind}s/{ident}",
                "external_urls": {"spotify": f"https://open.spotify.com/{kind}/{ident}"},
                "uri": player.context_uri,
            }
        if with_device:
            body["device"] = self._device_json(device, True)
            body["repeat_state"] = "off"
            body["shuffle_state"] = False
        return body

    async def _player_state(self, request: web.Request) -> web.Response:
        body = self._playing_json(self._user(request, READ_PLAYBACK), with_device=True)
        return self._json(body) if body is not None else web.Response(status=204)

    async def _currently_playing(self, request: web.Request) -> web.Response:
        account = self._user(request)
        grant = self._bearer(request)
        assert grant is not None
        if not grant.scopes & {READ_PLAYBACK, "user-read-currently-playing"}:
            raise ApiError(403, "Insufficient client scope")
        body = self._playing_json(account, with_device=False)
        return self._json(body) if body is not None else web.Response(status=204)

    async def _devices(self, request: web.Request) -> web.Response:
        account = self._user(request, READ_PLAYBACK)
        active = account.player.device_id
        return self._json(
            {"devices": [self._device_json(d, d.id == active) for d in account.devices]}
        )

    async def _transfer(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        ids = body.get("device_ids")
        if not isinstance(ids, list) or len(ids) != 1 or not isinstance(ids[0], str):
            raise ApiError(400, "device_ids must hold exactly one device id")
        account = self._commandable(request, ids[0])
        waking = self.lag.before_command(account, ids[0])
        player = account.player
        player.device_id = ids[0]
        if body.get("play") and player.queue and not player.is_playing:
            player.resume()
        return web.Response(status=self.lag.status(waking))

    async def _body(self, request: web.Request) -> JSON:
        raw = await request.read()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "Malformed json") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Malformed json")
        return body

    def _track_id(self, uri: object) -> str:
        if isinstance(uri, str) and uri.startswith("spotify:track:"):
            track_id = uri.removeprefix("spotify:track:")
            if track_id in self.tracks:
                return track_id
        raise ApiError(400, f"Invalid track uri: {uri}")

    async def _play(self, request: web.Request) -> web.Response:
        device_id = request.query.get("device_id")
        body = await self._body(request)
        account = self._commandable(request, device_id)
        waking = self.lag.before_command(account, device_id)
        player = account.player
        if device_id is not None:
            player.device_id = device_id
        position = body.get("position_ms", 0)
        if not isinstance(position, int) or position < 0:
            raise ApiError(400, "position_ms must be a non-negative integer")
        offset = body.get("offset") or {}
        if "uris" in body:
            uris = body["uris"]
            if not isinstance(uris, list) or not uris:
                raise ApiError(400, "uris must be a non-empty list")
            queue = [self._track_id(u) for u in uris]
            player.context_uri = None
        elif "context_uri" in body:
            playlist = self.playlists.get(str(body["context_uri"]).rsplit(":", 1)[-1])
            if playlist is None or not playlist.track_ids:
                raise ApiError(404, "Context not found")
            queue = list(playlist.track_ids)
            player.context_uri = str(body["context_uri"])
        else:  # resume
            if player.is_playing or player.track is None:
                raise restriction()
            player.resume()
            return web.Response(status=self.lag.status(waking))
        index = 0
        if isinstance(offset.get("position"), int):
            index = offset["position"]
        elif "uri" in offset:
            index = queue.index(self._track_id(offset["uri"]))
        if not 0 <= index < len(queue):
            raise ApiError(400, "Invalid offset")
        player.load(queue, index, position)
        return web.Response(status=self.lag.status(waking))

    async def _pause(self, request: web.Request) -> web.Response:
        account = self._commandable(request, request.query.get("device_id"))
        if not account.player.is_playing:
            raise restriction()
        self.lag.before_command(account)
        account.player.pause()
        return web.Response(status=204)

    async def _seek(self, request: web.Request) -> web.Response:
        account = self._commandable(request, request.query.get("device_id"))
        try:
            position = int(request.query["position_ms"])
        except (KeyError, ValueError) as exc:
            raise ApiError(400, "Required parameter position_ms missing") from exc
        if position < 0 or account.player.track is None:
            raise ApiError(400, "Invalid position_ms") if position < 0 else restriction()
        self.lag.before_command(account)
        account.player.seek(position)
        return web.Response(status=204)

    async def _next(self, request: web.Request) -> web.Response:
        account = self._commandable(request, request.query.get("device_id"))
        if account.player.track is None:
            raise restriction()
        self.lag.before_command(account)
        account.player.next()
        return web.Response(status=204)

    async def _track(self, request: web.Request) -> web.Response:
        track_id = request.match_info["id"]
        if len(track_id) != 22 or not track_id.isalnum():
            raise ApiError(400, "Invalid base62 id")
        track = self.tracks.get(track_id)
        if track is None:
            raise ApiError(404, "Resource not found")
        return self._json(self.track_json(track))

    def _playlist_json(self, playlist: FakePlaylist) -> JSON:
        owner = self.accounts.get(playlist.owner_id)
        items_ref = {
            "href": f"{self.base}/v1/playlists/{playlist.id}/items",
            "total": len(playlist.track_ids),
        }
        return {
            "collaborative": playlist.collaborative,
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist.id}"},
            "href": f"{self.base}/v1/playlists/{playlist.id}",
            "id": playlist.id,
            "images": [self._image(playlist.id)],
            "name": playlist.name,
            "owner": {
                "external_urls": {"spotify": f"https://open.spotify.com/user/{playlist.owner_id}"},
                "href": f"{self.base}/v1/users/{playlist.owner_id}",
                "id": playlist.owner_id,
                "type": "user",
                "uri": f"spotify:user:{playlist.owner_id}",
                "display_name": owner.display_name if owner else None,
            },
            "public": playlist.public,
            "snapshot_id": "c25hcHNob3Q",
            "items": items_ref,
            "tracks": items_ref,
            "type": "playlist",
            "uri": f"spotify:playlist:{playlist.id}",
        }

    async def _my_playlists(self, request: web.Request) -> web.Response:
        account = self._user(request)
        grant = self._bearer(request)
        assert grant is not None
        # Owned, collaborative and followed playlists, as Spotify lists them.
        mine = [
            p
            for p in self.playlists.values()
            if account.id == p.owner_id or account.id in p.collaborators | p.followers
        ]
        if "playlist-read-private" not in grant.scopes:
            mine = [p for p in mine if p.public]
        return self._json(self._paging(request, [self._playlist_json(p) for p in mine], 50))

    async def _playlist_items(self, request: web.Request) -> web.Response:
        grant = self._bearer(request)
        assert grant is not None
        playlist = self.playlists.get(request.match_info["id"])
        if playlist is None:
            raise ApiError(404, "Resource not found")
        try:
            self.devmode.check_playlist_items(
                grant.account_id, playlist.owner_id, playlist.collaborators
            )
        except DevModeRefusal as exc:
            raise ApiError(exc.status, exc.message, exc.reason) from None
        mine = grant.account_id in {playlist.owner_id, *playlist.collaborators}
        readable = playlist.public or (mine and "playlist-read-private" in grant.scopes)
        if not readable:
            raise ApiError(404, "Resource not found")
        # Feb 2026: /items answers `item`; the old /tracks, still documented, `track`.
        key = "track" if request.path.rstrip("/").endswith("/tracks") else "item"
        owner = {
            "external_urls": {"spotify": f"https://open.spotify.com/user/{playlist.owner_id}"},
            "href": f"{self.base}/v1/users/{playlist.owner_id}",
            "id": playlist.owner_id,
            "type": "user",
            "uri": f"spotify:user:{playlist.owner_id}",
        }
        items = []
        for track_id in playlist.track_ids:
            track = self.track_json(self.tracks[track_id])
            items.append(
                {
                    "added_at": "2025-01-01T12:00:00Z",
                    "added_by": owner,
                    "is_local": False,
                    key: track,
                }
            )
        return self._json(self._paging(request, items, 100))

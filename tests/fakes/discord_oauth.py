"""Fake Discord OAuth2 (authorization code grant, `identify`) on top of a FakeDiscord.

    oauth = FakeDiscordOAuth(fake_discord, client_secret="s3cret")
    oauth.redirect_uris.add("http://127.0.0.1:8000/discord/callback")
    oauth.signed_in = bob            # whose Discord session the browser has
    redirect = await oauth.consent(authorize_url)        # or a real browser clicks Authorize

Serves, on the fake's own port (as discord.com does):
  GET  /oauth2/authorize          consent page for the signed-in user (Authorize / Cancel)
  POST /oauth2/authorize          the decision: 302 to redirect_uri with code or error
  POST /api/v10/oauth2/token      code -> Bearer token (client auth: Basic or form fields)
  GET  /api/v10/users/@me         with a Bearer token: the user who authorized

Real behaviour modelled (https://discord.com/developers/docs/topics/oauth2):
- redirect_uri must exactly match one registered for the application, at authorize and again
  at the token exchange ("Invalid OAuth2 redirect_uri"; invalid_grant);
- a wrong client id or secret is 401 `{"error": "invalid_client"}`; a code is single-use and
  short-lived, a second exchange or an unknown code is 400 `{"error": "invalid_grant"}`;
- Cancel on the consent page redirects with `error=access_denied` and the state;
- the consent page shows the account of the browser's Discord session: whoever is signed in
  is who the application learns about, which is exactly what the link confirmation relies on.
Each check can be relaxed per test through the attributes below (all strict by default).
"""

from __future__ import annotations

import base64
import html
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp import web

from tests.fakes.discord import FakeDiscord, Member, error_response, json_response

CODE_TTL = 600.0  # seconds an authorization code stays exchangeable


@dataclass
class _Code:
    user: Member
    redirect_uri: str
    expires_at: float


class FakeDiscordOAuth:
    def __init__(self, discord: FakeDiscord, client_secret: str = "fake-discord-secret") -> None:
        self.discord = discord
        self.client_secret = client_secret
        self.redirect_uris: set[str] = set()
        self.signed_in: Member | None = None  # the browser's Discord session
        self.check_redirect_uri = True
        self.codes: dict[str, _Code] = {}
        self.tokens: dict[str, Member] = {}
        self.exchanges = 0  # token requests seen, good or bad
        discord.intercepts.append(self._intercept)

    # --- helpers for tests ------------------------------------------------------------------

    async def consent(self, authorize_url: str, agree: bool = True) -> str:
        """Act as the browser on the consent page; the URL Discord redirects to."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        form = {**query, "decision": "authorize" if agree else "cancel"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{self.discord.port}/oauth2/authorize",
                data=form,
                allow_redirects=False,
            ) as response,
        ):
            assert response.status == 302, await response.text()
            return response.headers["Location"]

    # --- server -----------------------------------------------------------------------------

    async def _intercept(self, request: web.Request) -> web.StreamResponse | None:
        path, method = request.path, request.method
        if path == "/oauth2/authorize" and method == "GET":
            return self._page(request)
        if path == "/oauth2/authorize" and method == "POST":
            return await self._decide(request)
        if path == "/api/v10/oauth2/token" and method == "POST":
            return await self._token(request)
        bearer = request.headers.get("Authorization", "").startswith("Bearer ")
        if path == "/api/v10/users/@me" and method == "GET" and bearer:
            return self._me(request)
        return None

    def _client_problem(self, client_id: str, redirect_uri: str) -> str | None:
        if client_id != str(self.discord.application_id):
            return "Unknown Application"
        if self.check_redirect_uri and redirect_uri not in self.redirect_uris:
            return "Invalid OAuth2 redirect_uri"
        return None

    def _page(self, request: web.Request) -> web.Response:
        q = request.query
        problem = self._client_problem(q.get("client_id", ""), q.get("redirect_uri", ""))
        if problem is None and q.get("response_type") != "code":
            problem = "Invalid response_type"
        if problem is None and "identify" not in q.get("scope", "").split():
            problem = "Invalid scope"
        if problem is not None:
            return web.Response(status=400, text=problem)
        user = self.signed_in
        if user is None:
            return web.Response(text="<h1>Log in to Discord</h1>", content_type="text/html")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in q.items()
        )
        return web.Response(
            content_type="text/html",
            text=f"""<!doctype html><html><head><title>Discord</title></head><body>
<h1>Game Night wants to access your Discord account</h1>
<p>Signed in as <b>{html.escape(user.name)}</b>. It will see your username and avatar.</p>
<form method="post" action="/oauth2/authorize">{hidden}
<button name="decision" value="cancel">Cancel</button>
<button name="decision" value="authorize">Authorize</button></form></body></html>""",
        )

    async def _decide(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        redirect_uri = form.get("redirect_uri", "")
        problem = self._client_problem(form.get("client_id", ""), redirect_uri)
        if problem is not None or self.signed_in is None:
            return web.Response(status=400, text=problem or "not signed in")
        state = form.get("state", "")
        if form.get("decision") != "authorize":
            params = {
                "error": "access_denied",
                "error_description": "The resource owner or authorization server denied the "
                "request",
                "state": state,
            }
        else:
            code = secrets.token_urlsafe(20)
            self.codes[code] = _Code(self.signed_in, redirect_uri, time.time() + CODE_TTL)
            params = {"code": code, "state": state}
        raise web.HTTPFound(f"{redirect_uri}?{urlencode(params)}")

    def _client_auth(self, request: web.Request, form: dict[str, str]) -> bool:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            decoded = base64.b64decode(auth[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        return client_id == str(self.discord.application_id) and secrets.compare_digest(
            secret, self.client_secret
        )

    async def _token(self, request: web.Request) -> web.Response:
        self.exchanges += 1
        if request.content_type != "application/x-www-form-urlencoded":
            return json_response({"error": "unsupported_grant_type"}, status=400)
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not self._client_auth(request, form):
            return json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "authorization_code":
            return json_response({"error": "unsupported_grant_type"}, status=400)
        code = self.codes.pop(form.get("code", ""), None)  # single use
        if (
            code is None
            or code.expires_at < time.time()
            or code.redirect_uri != form.get("redirect_uri")
        ):
            return json_response(
                {"error": "invalid_grant", "error_description": 'Invalid "code" in request.'},
                status=400,
            )
        token = secrets.token_urlsafe(24)
        self.tokens[token] = code.user
        return json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 604800,
                "refresh_token": secrets.token_urlsafe(24),
                "scope": "identify",
            }
        )

    def _me(self, request: web.Request) -> web.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        user = self.tokens.get(token)
        if user is None:
            return error_response(401, 0, "401: Unauthorized")
        return json_response(user.user())

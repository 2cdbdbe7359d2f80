"""GET /spotify/callback and the confirmation: where Spotify sends the browser after consent.

The callback links nothing: `Linker.complete` exchanges the code and keeps a pending link (in
storage, so any web replica can take the confirmation), and
the page names the Discord account (name and avatar) that will be linked and the Spotify
account it gets, with "Link" and "Cancel". That form POSTs to /spotify/confirm with the state
and the pending link's form token (single use: a replay or a forged form links nothing). With
Discord OAuth configured (`identify`), "Link" first sends the browser to Discord, and
GET /discord/callback links only if Discord says the person is the one who ran /link.

Every outcome (linked, cancelled, refused, denied, expired, reused or forged state, a failed
exchange) gets a small, accessible page that says what happened and what to do next; our own
failures are logged and never shown as a traceback.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.web.client_limit import ensure_limiter, limit
from bot.web.discord_oauth import CALLBACK_PATH, DiscordOAuth, IdentifyFailed
from bot.web.errors import logged_path
from bot.web.inputs import BadRequest, check_text
from bot.web.payload import BodyTooSlow
from bot.web.services import BODY_TIMEOUT
from core.errors import STORAGE_DOWN
from core.linking import Linker, LinkOutcome, PendingLink
from storage.errors import StorageUnavailable

log = logging.getLogger(__name__)

Notify = Callable[[LinkOutcome], Awaitable[object]]


@dataclass(frozen=True)
class Person:
    """How a Discord user looks in Discord: what the confirmation page shows."""

    name: str
    avatar_url: str | None = None


WhoIs = Callable[[int], Awaitable[Person | None]]


async def _nobody(user_id: int) -> Person | None:
    return None


LINKER_KEY = web.AppKey("linker", Linker)
NOTIFY_KEY: web.AppKey[Notify | None] = web.AppKey("link_notify")
TASKS_KEY: web.AppKey[set[asyncio.Task[object]]] = web.AppKey("link_notify_tasks")  # in flight
WHO_KEY: web.AppKey[WhoIs] = web.AppKey("link_who")
DISCORD_OAUTH_KEY: web.AppKey[DiscordOAuth | None] = web.AppKey("discord_oauth")


@dataclass(frozen=True)
class Page:
    status: int
    title: str
    next_step: str


NOTHING_LINKED = Page(200, "Nothing was linked", "Changed your mind? Run /link in Discord again.")
PAGES: dict[str, Page] = {
    "linked": Page(200, "Spotify linked", "Go back to Discord: /gamenight join or start."),
    "cancelled": NOTHING_LINKED,
    "denied": NOTHING_LINKED,
    "already_linked": Page(409, "These accounts are linked", "To undo it, run /unlink in Discord."),
    "mismatch": Page(403, "This link isn't yours", "Run /link in Discord for your own link."),
    "expired": Page(400, "This link has expired", "Run /link in Discord for a fresh link."),
    "used": Page(
        400, "This link was already used", "Check with /me in Discord; if not linked, run /link."
    ),
    "unknown": Page(400, "This link isn't valid", "Run /link in Discord to get a new one."),
    "exchange_failed": Page(
        502, "Spotify didn't finish linking", "Wait a moment, then run /link in Discord again."
    ),
    "misconfigured": Page(
        503,
        "This bot is misconfigured",
        "Please tell the bot's operator (whoever runs it in your server): "
        "running /link again won't help.",
    ),
}
BROKEN = Page(500, "Something went wrong on our side", "Please run /link in Discord again.")
BROKEN_MESSAGE = "The link could not be completed; the problem has been logged."
STORAGE_PAGE = Page(503, "Please try again in a minute", "Reload this page in a minute.")
DISCORD_DOWN = Page(502, "Discord didn't confirm who you are", "Run /link in Discord again.")
DISCORD_DOWN_MESSAGE = "Discord did not answer, so nothing was linked."
BAD_DISCORD_CODE = Page(400, "This link isn't valid", "Run /link in Discord to get a new one.")
BAD_DISCORD_CODE_MESSAGE = "Discord did not accept this confirmation, so nothing was linked."
BAD_FORM = Page(400, "This form isn't valid", "Run /link in Discord to get a new link.")

_STYLE = """
body{font:1.05rem/1.5 system-ui,sans-serif;margin:0;background:#121212;color:#f2f2f2}
main{max-width:34rem;margin:12vh auto;padding:2rem;background:#1f1f1f;border-radius:12px}
h1{font-size:1.5rem;margin-top:0}
.ok h1{color:#1ed760}
.fail h1{color:#ffb4a8}
p.next{font-weight:600}
.who{display:flex;align-items:center;gap:.75rem;margin:.5rem 0 1rem;font-size:1.2rem}
.who img{width:48px;height:48px;border-radius:50%}
.muted{color:#b3b3b3;font-size:.95rem}
form{display:flex;gap:1rem;margin-top:1.5rem}
button{font:inherit;padding:.6rem 1.2rem;border-radius:999px;border:0;cursor:pointer}
button.go{background:#1ed760;color:#000;font-weight:700}
button.stop{background:#333;color:#f2f2f2}
"""


def _text(value: str) -> str:
    return html.escape(value, quote=False)  # element content only: no attribute is dynamic


def render_page(page: Page, message: str, ok: bool) -> str:
    """The whole HTML document; every dynamic string is escaped."""
    role = "status" if ok else "alert"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_text(page.title)} · Game Night</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>{_STYLE}</style>
</head>
<body>
<main class="{"ok" if ok else "fail"}">
<h1>{_text(page.title)}</h1>
<p role="{role}">{_text(message)}</p>
<p class="next">{_text(page.next_step)} You can close this tab.</p>
</main>
</body>
</html>
"""


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def render_confirm(pending: PendingLink, person: Person | None, *, via_discord: bool) -> str:
    """The confirmation page: which Discord account gets which Spotify account."""
    name = person.name if person is not None else f"Discord user {pending.discord_user_id}"
    avatar = ""
    if person is not None and person.avatar_url:
        avatar = f'<img src="{_attr(person.avatar_url)}" alt="" width="48" height="48">'
    button = "Confirm with Discord" if via_discord else "Link these accounts"
    check = (
        "Discord will ask who you are: only that Discord account can complete this link."
        if via_discord
        else "If that is not your Discord account, press Cancel: someone else ran /link."
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Link Spotify? · Game Night</title>
<style>{_STYLE}</style>
</head>
<body>
<main class="ask">
<h1>Link this Spotify account?</h1>
<p class="muted">Discord account</p>
<div class="who" id="discord-account">{avatar}<span>{_text(name)}</span></div>
<p class="muted">will control and follow game nights with the Spotify account</p>
<div class="who" id="spotify-account"><span>{_text(pending.spotify_name)}</span>
<span class="muted">({_text(pending.spotify_user_id)})</span></div>
<p>{_text(check)}</p>
<form method="post" action="/spotify/confirm">
<input type="hidden" name="state" value="{_attr(pending.state)}">
<input type="hidden" name="token" value="{_attr(pending.form_token)}">
<button class="go" name="action" value="link">{_text(button)}</button>
<button class="stop" name="action" value="cancel">Cancel</button>
</form>
</main>
</body>
</html>
"""


def _html(text: str, status: int, request: web.Request, *, form: bool = False) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html")
    # The URL carried a one-time code and state: keep it out of caches and Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    csp = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    if form:
        # The form posts here; with Discord OAuth its answer redirects to Discord, which
        # form-action must allow too. Avatars come from Discord's CDN.
        oauth = request.app[DISCORD_OAUTH_KEY]
        targets = "'self'" + (f" {oauth.origin}" if oauth is not None else "")
        csp += f"; form-action {targets}; img-src 'self' https: http: data:"
    else:
        csp += "; form-action 'none'; img-src 'self'"  # 'self': the favicon
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"  # no clickjacking of the Link button
    return response


def _response(page: Page, message: str, ok: bool, request: web.Request) -> web.Response:
    return _html(render_page(page, message, ok), page.status, request)


def _outcome_page(request: web.Request, outcome: LinkOutcome) -> web.Response:
    if outcome.reason == "linked":
        _notify(request.app, outcome)
    return _response(PAGES.get(outcome.reason, BROKEN), outcome.message, outcome.ok, request)


def _failure(request: web.Request, exc: Exception) -> web.Response:
    if isinstance(exc, StorageUnavailable):  # an outage: storage logged it once
        return _response(STORAGE_PAGE, STORAGE_DOWN, False, request)
    log.error("linking failed on %s", logged_path(request), exc_info=exc)
    return _response(BROKEN, BROKEN_MESSAGE, False, request)


async def spotify_callback(request: web.Request) -> web.Response:
    limit(request)  # an unknown state costs a storage read: guessing must not be free
    linker = request.app[LINKER_KEY]
    query = request.query
    try:
        outcome = await linker.complete(query.get("state"), query.get("code"), query.get("error"))
        pending = outcome.pending
        if pending is None:
            return _outcome_page(request, outcome)
        person = await request.app[WHO_KEY](pending.discord_user_id)
    except Exception as exc:
        return _failure(request, exc)
    via_discord = request.app[DISCORD_OAUTH_KEY] is not None
    return _html(render_confirm(pending, person, via_discord=via_discord), 200, request, form=True)


SLOW_FORM = Page(408, "The form took too long to arrive", "Reload the page and press again.")


async def _form(request: web.Request) -> tuple[str, str, str]:
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT]):
            form = await request.post()
    except TimeoutError:
        # 408 like a slow song request: the client was too slow, the form may be fine.
        raise BodyTooSlow("The form took too long to arrive.") from None
    values = []
    for name in ("state", "token", "action"):
        value = form.get(name)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"The form is missing '{name}'.")
        values.append(check_text(value, name, max_length=100))
    state, token, action = values
    if action not in ("link", "cancel"):
        raise BadRequest("The form's action must be link or cancel.")
    return state, token, action


async def spotify_confirm(request: web.Request) -> web.Response:
    """POST /spotify/confirm: the person pressed Link or Cancel on the confirmation page."""
    limit(request)  # an unknown state costs a storage read: guessing must not be free
    linker = request.app[LINKER_KEY]
    try:
        state, token, action = await _form(request)
    except BodyTooSlow as exc:
        return _response(SLOW_FORM, exc.message, False, request)
    except BadRequest as exc:
        return _response(BAD_FORM, exc.message, False, request)
    try:
        if action == "cancel":
            return _outcome_page(request, await linker.cancel(state, token))
        oauth = request.app[DISCORD_OAUTH_KEY]
        if oauth is None:
            return _outcome_page(request, await linker.confirm(state, token))
        discord_state = await linker.vouch(state, token)
        if discord_state is None:
            return _outcome_page(request, Linker.failed("used"))
        url = oauth.authorize_url(discord_state)
        if url is None:
            return _response(DISCORD_DOWN, "The bot is still starting; try again.", False, request)
        raise web.HTTPSeeOther(url, headers={"Cache-Control": "no-store"})
    except web.HTTPException:
        raise
    except Exception as exc:
        return _failure(request, exc)


async def discord_callback(request: web.Request) -> web.Response:
    """GET /discord/callback: Discord says who confirmed; link only if it is the right person."""
    limit(request)  # an unknown state costs a storage read: guessing must not be free
    linker = request.app[LINKER_KEY]
    oauth = request.app[DISCORD_OAUTH_KEY]
    query = request.query
    state, code = query.get("state") or "", query.get("code") or ""
    try:
        if oauth is None or await linker.vouched_link(state) is None:
            return _outcome_page(request, await linker.confirm_as(state, None))
        if not code:  # the person pressed Cancel on Discord (error=access_denied)
            log.info("Discord authorization declined (%r)", query.get("error", "")[:40])
            return _outcome_page(request, await linker.confirm_as(state, None))
        try:
            user_id = await oauth.user_id(code)
        except IdentifyFailed as exc:
            await linker.confirm_as(state, None)
            if exc.bad_code:  # a forged or replayed code: the client's doing
                log.info("Discord refused the code of a link confirmation: %s", exc)
                return _response(BAD_DISCORD_CODE, BAD_DISCORD_CODE_MESSAGE, False, request)
            log.warning("Discord did not identify the user confirming a link: %s", exc)
            return _response(DISCORD_DOWN, DISCORD_DOWN_MESSAGE, False, request)
        return _outcome_page(request, await linker.confirm_as(state, user_id))
    except Exception as exc:
        return _failure(request, exc)


def _notify(app: web.Application, outcome: LinkOutcome) -> None:
    """Confirm in Discord without making the browser wait for it."""
    notify = app[NOTIFY_KEY]
    if notify is None:
        return
    tasks = app[TASKS_KEY]

    async def run() -> object:
        try:
            return await notify(outcome)
        except Exception as exc:
            # A courtesy DM (the page already said it): Discord down or the bot stopping is
            # worth a line, not a traceback.
            log.warning(
                "could not confirm the link of user %s in Discord: %r", outcome.discord_user_id, exc
            )
            return None

    task = asyncio.create_task(run())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _finish_notifications(app: web.Application) -> None:
    tasks = app[TASKS_KEY]
    if tasks:
        await asyncio.wait(tasks, timeout=5)


def add_link_routes(
    app: web.Application,
    linker: Linker,
    *,
    notify: Notify | None = None,
    who: WhoIs | None = None,
    discord_oauth: DiscordOAuth | None = None,
) -> None:
    """Add the callback and confirmation routes to `app`.

    `notify` hears about each successful link; `who` names a Discord user for the page;
    `discord_oauth`, when given, makes Discord prove who confirms.
    """
    app[LINKER_KEY] = linker
    app[NOTIFY_KEY] = notify
    app[TASKS_KEY] = set()
    app[WHO_KEY] = who or _nobody
    app[DISCORD_OAUTH_KEY] = discord_oauth
    ensure_limiter(app)
    app.on_shutdown.append(_finish_notifications)
    app.router.add_get("/spotify/callback", spotify_callback)
    app.router.add_post("/spotify/confirm", spotify_confirm)
    app.router.add_get(CALLBACK_PATH, discord_callback)

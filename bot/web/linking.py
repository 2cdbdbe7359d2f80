"""GET /spotify/callback: where Spotify sends the browser after the consent page.

`Linker.complete` does the work; this renders a small, accessible page that says what happened
and what to do next, for every outcome (linked, denied, expired, reused or forged state, a
failed exchange) and for our own failures, which are logged and never shown as a traceback.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from core.linking import Linker, LinkOutcome

log = logging.getLogger(__name__)

Notify = Callable[[LinkOutcome], Awaitable[object]]

LINKER_KEY = web.AppKey("linker", Linker)
NOTIFY_KEY: web.AppKey[Notify | None] = web.AppKey("link_notify")
TASKS_KEY: web.AppKey[set[asyncio.Task[object]]] = web.AppKey("link_notify_tasks")  # in flight


@dataclass(frozen=True)
class Page:
    status: int
    title: str
    next_step: str


PAGES: dict[str, Page] = {
    "linked": Page(200, "Spotify linked", "Go back to Discord: /gamenight join or start."),
    "denied": Page(200, "Nothing was linked", "Changed your mind? Run /link in Discord again."),
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
        "Please tell the bot's operator (whoever runs it in your server); "
        "running /link again won't help until they fix it.",
    ),
}
BROKEN = Page(500, "Something went wrong on our side", "Please run /link in Discord again.")
BROKEN_MESSAGE = "The link could not be completed; the problem has been logged."

_STYLE = """
body{font:1.05rem/1.5 system-ui,sans-serif;margin:0;background:#121212;color:#f2f2f2}
main{max-width:34rem;margin:12vh auto;padding:2rem;background:#1f1f1f;border-radius:12px}
h1{font-size:1.5rem;margin-top:0}
.ok h1{color:#1ed760}
.fail h1{color:#ffb4a8}
p.next{font-weight:600}
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


def _response(page: Page, message: str, ok: bool) -> web.Response:
    response = web.Response(
        text=render_page(page, message, ok), status=page.status, content_type="text/html"
    )
    # The URL carried a one-time code and state: keep it out of caches and Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"  # 'self': the favicon
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def spotify_callback(request: web.Request) -> web.Response:
    linker = request.app[LINKER_KEY]
    query = request.query
    try:
        outcome = await linker.complete(query.get("state"), query.get("code"), query.get("error"))
    except Exception:
        log.exception("the Spotify callback failed")
        return _response(BROKEN, BROKEN_MESSAGE, ok=False)
    if outcome.ok:
        _notify(request.app, outcome)
    return _response(PAGES.get(outcome.reason, BROKEN), outcome.message, outcome.ok)


def _notify(app: web.Application, outcome: LinkOutcome) -> None:
    """Confirm in Discord without making the browser wait for it."""
    notify = app[NOTIFY_KEY]
    if notify is None:
        return
    tasks = app[TASKS_KEY]

    async def run() -> object:
        try:
            return await notify(outcome)
        except Exception:
            log.exception("confirming the link of user %s failed", outcome.discord_user_id)
            return None

    task = asyncio.create_task(run())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _finish_notifications(app: web.Application) -> None:
    tasks = app[TASKS_KEY]
    if tasks:
        await asyncio.wait(tasks, timeout=5)


def add_link_routes(app: web.Application, linker: Linker, *, notify: Notify | None = None) -> None:
    """Add GET /spotify/callback to `app`; `notify` hears about each successful link."""
    app[LINKER_KEY] = linker
    app[NOTIFY_KEY] = notify
    app[TASKS_KEY] = set()
    app.on_shutdown.append(_finish_notifications)
    app.router.add_get("/spotify/callback", spotify_callback)

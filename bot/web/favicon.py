"""GET /favicon.ico and /favicon.svg: the tab icon of the callback and listen pages.

Browsers ask for /favicon.ico on every page; without it each visit logs a 404 and the tab
shows a blank icon. One small SVG (a game controller on Spotify green) serves both paths:
every current browser accepts SVG there.
"""

from __future__ import annotations

from aiohttp import web

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
    '<rect width="64" height="64" rx="14" fill="#1db954"/>'
    '<path d="M18 22h28a10 10 0 0 1 10 10v4a8 8 0 0 1-14 5l-3-3H25l-3 3a8 8 0 0 1-14-5v-4'
    'a10 10 0 0 1 10-10z" fill="#121212"/>'
    '<path d="M19 28v8M15 32h8" stroke="#1db954" stroke-width="3" stroke-linecap="round"/>'
    '<circle cx="42" cy="29" r="2.5" fill="#1db954"/><circle cx="47" cy="34" r="2.5" '
    'fill="#1db954"/></svg>'
)


async def favicon(request: web.Request) -> web.Response:
    response = web.Response(text=ICON, content_type="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def add_favicon(app: web.Application) -> None:
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/favicon.svg", favicon)

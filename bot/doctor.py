"""`python -m bot doctor [--online] [--web] [--track ID]`: check a deployment before it runs.

Checks every setting, storage, the Discord token, the Spotify app credentials (one
client-credentials token), the redirect URI's form, the JS runtime yt-dlp needs, the yt-dlp and
spotDL versions, and the PO-token provider when one is set. `--online` also resolves one known
track end to end (Spotify metadata, spotDL's search, yt-dlp's extraction) and plays its first
second through the audio relay: the smoke test of a real deployment. Prints a checklist with the
fix for each failure; exits 0 only when every check passed ("warn" lines do not fail it).
`--web` checks a web-only deployment (`python -m bot web`): no DISCORD_TOKEN needed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import sys
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from functools import partial
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from bot.doctor_checks import (
    TIMEOUT,
    Check,
    check_discord,
    check_js_runtime,
    check_pot_provider,
    check_public_base_url,
    check_redirect_uri,
    check_spotify_app,
    check_storage,
    check_versions,
)
from bot.services import open_resources, relay_config, youtube_config
from bot.settings import WEB_KEYS, Settings, SettingsError, load_settings
from bot.web import create_app
from core.errors import UserFacingError
from core.youtube import YouTubeConfig

# Spotify's own id of a track every YouTube has (Rick Astley, "Never Gonna Give You Up").
KNOWN_TRACK = "4PTG3Z6ehGkBFwjybzWkR8"
ONLINE_TIMEOUT_S = 120.0


async def check_online(
    settings: Settings,
    track_id: str,
    *,
    ytmusic_client_factory: Callable[[], Any] | None = None,
) -> list[Check]:
    """Resolve `track_id` end to end, then play its first second through the relay."""
    fix = (
        "read the WARNING lines above (yt-dlp names the cause: bot check -> "
        "YOUTUBE_COOKIES_FILE / YOUTUBE_PROXY / YOUTUBE_POT_PROVIDER_URL; no JS runtime -> "
        "install deno; old yt-dlp -> update it)"
    )
    async with AsyncExitStack() as stack:
        try:
            res = await open_resources(
                stack,
                settings,
                resolver_workers=1,
                ytmusic_client_factory=ytmusic_client_factory,
            )
            await res.resolver.start()
        except Exception as exc:  # any failure is the finding; the checklist shows it
            detail = f"could not start the resolver: {type(exc).__name__}: {exc}"
            return [Check("resolve a known track", False, detail, fix)]
        try:
            async with asyncio.timeout(ONLINE_TIMEOUT_S):
                entry = await res.resolver.resolve_id(track_id)
        except (UserFacingError, TimeoutError) as exc:
            message = getattr(exc, "message", None) or "took too long"
            return [Check("resolve a known track", False, message, fix)]
        except Exception as exc:  # storage failing mid-way, say: still a line, not a traceback
            detail = f"{type(exc).__name__}: {exc}"
            return [Check("resolve a known track", False, detail, fix)]
        resolved = Check("resolve a known track", True, f"{track_id} -> {entry.video_url}")

        # The relay exactly as the server runs it, on a private port of this host.
        relay = relay_config(settings)
        runner = web.AppRunner(create_app(storage=res.storage, resolver=res.resolver, relay=relay))
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        signer = relay.signer.rebased(f"http://127.0.0.1:{port}")
        played = await _play_a_second(res.http, signer.url(entry.track_id))
        return [resolved, played]


async def _play_a_second(http: aiohttp.ClientSession, url: str) -> Check:
    fix = "YouTube refused the audio: see the WARNING lines above; try YOUTUBE_PROXY or cookies"
    try:
        # About a second of audio at the bitrates YouTube serves (<= 160 kbit/s opus/aac).
        headers = {"Range": "bytes=0-32767"}
        async with http.get(url, headers=headers, timeout=TIMEOUT) as r:
            body = await r.read()
            if r.status not in (200, 206) or not body:
                text = body[:200].decode(errors="replace").strip()
                return Check("play through the relay", False, f"HTTP {r.status}: {text}", fix)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Check("play through the relay", False, repr(exc), fix)
    return Check("play through the relay", True, f"{len(body)} bytes of {r.content_type}")


async def run_checks(
    settings: Settings,
    *,
    online: bool = False,
    track_id: str = KNOWN_TRACK,
    ytmusic_client_factory: Callable[[], Any] | None = None,
    youtube: YouTubeConfig | None = None,
    today: dt.date | None = None,
) -> list[Check]:
    checks = [Check("settings", True, "every setting is valid")]
    yt = youtube or youtube_config(settings)
    async with aiohttp.ClientSession() as http:
        checks.append(await check_storage(settings))
        checks.append(await check_discord(settings, http))
        if settings.spotify_app:
            checks.append(await check_spotify_app(settings, http))
            checks.append(check_redirect_uri(settings))
        else:  # optional (voice, #16): hosts are followed by their Discord presence
            checks.append(
                Check(
                    "Spotify app credentials",
                    True,
                    "not set: game nights follow the host's Discord presence; /link is off",
                )
            )
        checks.append(check_public_base_url(settings))
        checks.append(await asyncio.to_thread(check_js_runtime, yt))
        checks += check_versions(
            importlib.metadata.version("yt-dlp"),
            importlib.metadata.version("spotdl"),
            today or dt.datetime.now(dt.UTC).date(),
        )
        if settings.youtube_pot_provider_url:
            checks.append(await check_pot_provider(settings.youtube_pot_provider_url, http))
    if online:
        if all(c.ok for c in checks):
            checks += await check_online(
                settings, track_id, ytmusic_client_factory=ytmusic_client_factory
            )
        else:
            checks.append(Check("online smoke test", False, "skipped", "fix the failures above"))
    return checks


def report(checks: list[Check], out: TextIO) -> None:
    print("Game Night doctor", file=out)
    for check in checks:
        mark = "FAIL" if not check.ok else "warn" if check.warn else "ok"
        print(f"  [{mark}] {check.name}: {check.detail}", file=out)
        if (not check.ok or check.warn) and check.fix:
            print(f"         fix: {check.fix}", file=out)
    failed = sum(not c.ok for c in checks)
    print("All checks passed." if not failed else f"{failed} check(s) failed.", file=out)


def settings_failures(error: SettingsError) -> list[Check]:
    fix = "set it in the environment or .env (see .env.example)"
    web = " (a web-only deployment, `python -m bot web`, needs none: `python -m bot doctor --web`)"
    return [
        Check("settings", False, problem, fix + (web if "DISCORD_TOKEN" in problem else ""))
        for problem in error.problems
    ]


async def _amain(settings: Settings, online: bool, track_id: str) -> list[Check]:
    return await run_checks(settings, online=online, track_id=track_id)


_LOAD_WEB = partial(load_settings, required=WEB_KEYS)  # no DISCORD_TOKEN needed


def main(
    argv: list[str],
    *,
    load: Callable[[], Settings] = load_settings,
    load_web: Callable[[], Settings] = _LOAD_WEB,
    run: Callable[[Settings, bool, str], Coroutine[Any, Any, list[Check]]] = _amain,
    out: TextIO = sys.stdout,
) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot doctor", description=__doc__)
    parser.add_argument(
        "--online", action="store_true", help="also resolve a track and play it via the relay"
    )
    parser.add_argument("--track", default=KNOWN_TRACK, help="Spotify track id for --online")
    parser.add_argument(
        "--web", action="store_true", help="a web-only deployment (python -m bot web): no Discord"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_web() if args.web else load()
    except SettingsError as err:
        checks = settings_failures(err)
    else:
        checks = asyncio.run(run(settings, args.online, args.track))
    report(checks, out)
    return 0 if all(c.ok for c in checks) else 1

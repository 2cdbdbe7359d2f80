"""The fake Spotify in its own process, for the sync benchmarks, with a small control API.

Why a separate process: with hundreds of sessions the fake's own request handling is real CPU
work; in the benchmark's process it would count as the engine's event-loop lag. Player clocks
are `time.time()`, the same clock the benchmark process reads, so times compare across the two.

Started by `SpotifyProcess` (below); it prints "<api port> <control port>" on its first line.
Control API (JSON over HTTP on the control port):
  POST /setup  {"accounts": [...], "latency": [mean, jitter], "rate_limit": null}
               -> {"tokens": {account: [access, refresh, expires_at, scopes]},
                   "catalog": [[track id, duration ms], ...]}
  POST /load   {"account", "track_ids", "position_ms"}              -> {"at": time}
  POST /act    {"accounts": [...], "action": next|pause|resume|seek, "position_ms"}
                        -> {"at": {account: time of the change}, "track": {account: track id}}
  POST /state  {"accounts": [...]} -> {account: [track_id, position_ms, is_playing, changed_at]},
               every player read at the same instant (one handler, no await in between)
  POST /counts {"accounts": [...]} -> {account: Web API requests so far}
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.spotify import FakeSpotify


def control_app(fake: FakeSpotify) -> web.Application:
    counted = 0
    counts: Counter[str] = Counter()

    async def setup(request: web.Request) -> web.Response:
        body = await request.json()
        fake.set_latency(*body.get("latency", (0.0, 0.0)))
        fake.app.rate_limit = body.get("rate_limit")
        short = body.get("short_tracks", 0)  # the first N tracks last `short_ms` (compressed time)
        for i, track in enumerate(fake.catalog[:short]):
            fake.catalog[i] = fake.tracks[track.id] = replace(track, duration_ms=body["short_ms"])
        # Each benchmark session (host + listeners, at most 5 people) stands for a game night of
        # its own app; they share this one fake app, so its allowlist must hold them all.
        allowed = fake.devmode.allowlists.get(fake.devmode.default_app, set())
        fake.devmode.max_users = max(fake.devmode.max_users, len(allowed) + len(body["accounts"]))
        tokens = {}
        for account in body["accounts"]:
            fake.add_account(account)
            pair = fake.issue_tokens(account)
            tokens[account] = [pair.access_token, pair.refresh_token, pair.expires_at, pair.scopes]
        catalog = [[t.id, t.duration_ms] for t in fake.catalog]
        return web.json_response({"tokens": tokens, "catalog": catalog})

    async def load(request: web.Request) -> web.Response:
        body = await request.json()
        fake.player(body["account"]).load(body["track_ids"], position_ms=body["position_ms"])
        return web.json_response({"at": time.time()})

    async def act(request: web.Request) -> web.Response:
        body = await request.json()
        done, tracks = {}, {}
        for account in body["accounts"]:
            player = fake.player(account)
            match body["action"]:
                case "next":
                    player.next()
                case "pause":
                    player.pause()
                case "resume":
                    player.resume()
                case "seek":
                    player.seek(body["position_ms"])
            done[account] = player.changed_at
            tracks[account] = player.now().track_id
        return web.json_response({"at": done, "track": tracks})

    async def state(request: web.Request) -> web.Response:
        body = await request.json()
        players = {a: fake.player(a) for a in body["accounts"]}
        snapshots = {a: (p.now(), p.changed_at) for a, p in players.items()}
        return web.json_response(
            {
                a: [s.track_id, s.position_ms, s.is_playing, changed]
                for a, (s, changed) in snapshots.items()
            }
        )

    async def count(request: web.Request) -> web.Response:
        nonlocal counted
        body = await request.json()
        for record in fake.log[counted:]:  # the log only grows: count new entries once
            if record.account_id is not None and record.path.startswith("/v1/"):
                counts[record.account_id] += 1
        counted = len(fake.log)
        return web.json_response({a: counts[a] for a in body["accounts"]})

    app = web.Application()
    for path, handler in (
        ("/setup", setup),
        ("/load", load),
        ("/act", act),
        ("/state", state),
        ("/counts", count),
    ):
        app.router.add_post(path, handler)
    return app


async def serve() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FakeSpotify() as fake:
        # Benchmarks load hundreds of accounts on one app and measure what the bot spends:
        # Spotify's 5-user allowlist would refuse the 6th, so it is off here, on purpose; the
        # account quota (1,500 calls a day in the fake) is raised past what 200 sessions spend
        # and still counted (`fake.quota.spent()`).
        fake.devmode.enforce_allowlist = False
        fake.quota.budget = 10_000_000
        runner = web.AppRunner(control_app(fake), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        control_port = runner.addresses[0][1]
        print(fake.port, control_port, flush=True)
        await stop.wait()
        await runner.cleanup()


class SpotifyProcess:
    """`async with SpotifyProcess() as spotify:` the fake in a child process, and its controls."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.base = ""
        self._control = ""

    async def __aenter__(self) -> SpotifyProcess:
        self._proc = subprocess.Popen(  # noqa: ASYNC220  # once per run, returns at once
            [sys.executable, "-m", "tests.bench.spotify_process"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = await asyncio.to_thread(self._proc.stdout.readline)
        api, control = line.split()
        self.base = f"http://127.0.0.1:{api}"
        self._control = f"http://127.0.0.1:{control}"
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self._proc.wait, 10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    async def call(self, path: str, **body: Any) -> Any:
        assert self._http is not None
        async with self._http.post(self._control + path, json=body) as response:
            response.raise_for_status()
            return await response.json()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())

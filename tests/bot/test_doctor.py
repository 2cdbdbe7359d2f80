"""`python -m bot doctor`: the checklist against the fakes, one failing check at a time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from pathlib import Path

import pytest
from aiohttp import web

from bot import doctor
from bot.__main__ import main
from bot.doctor import Check, check_versions, run_checks
from bot.keyfile import KEY_FILE
from bot.settings import Settings, SettingsError
from core.youtube import YouTubeConfig
from tests.bot.conftest import VIDEO_ID, World
from tests.conftest import free_port
from tests.fakes.youtube import FakeYouTube
from tests.pwa import TRACK_ID

TODAY = dt.date(2026, 11, 20)


async def checklist(
    settings: Settings,
    youtube: FakeYouTube,
    *,
    online: bool = False,
    yt_dlp: YouTubeConfig | None = None,
) -> dict[str, Check]:
    checks = await run_checks(
        settings,
        online=online,
        track_id=TRACK_ID,
        ytmusic_client_factory=youtube.ytmusic_client,
        youtube=yt_dlp,
        today=TODAY,
    )
    return {c.name: c for c in checks}


def failed(checks: dict[str, Check]) -> dict[str, Check]:
    return {name: c for name, c in checks.items() if not c.ok}


async def test_everything_passes_online_against_the_fakes(
    world: World, youtube: FakeYouTube
) -> None:
    checks = await checklist(world.settings, youtube, online=True)
    assert not failed(checks), failed(checks)
    assert checks["JavaScript runtime"].detail.startswith("deno ")
    assert VIDEO_ID in checks["resolve a known track"].detail
    assert "bytes of audio/wav" in checks["play through the relay"].detail
    assert youtube.counts.stream_fetches >= 1  # the second of audio really came from "YouTube"

    out = io.StringIO()
    doctor.report(list(checks.values()), out)
    assert out.getvalue().rstrip().endswith("All checks passed.")


async def test_a_refused_discord_token(world: World, youtube: FakeYouTube) -> None:
    settings = dataclasses.replace(world.settings, discord_token="not-the-token")
    found = failed(await checklist(settings, youtube))
    assert list(found) == ["Discord token"]
    assert "Reset Token" in found["Discord token"].fix


async def test_wrong_spotify_credentials(world: World, youtube: FakeYouTube) -> None:
    settings = dataclasses.replace(world.settings, spotify_client_secret="wrong")
    found = failed(await checklist(settings, youtube))
    assert list(found) == ["Spotify app credentials"]
    assert "invalid_client" in found["Spotify app credentials"].detail
    assert "SPOTIFY_CLIENT_SECRET" in found["Spotify app credentials"].fix


async def test_storage_that_does_not_answer(world: World, youtube: FakeYouTube) -> None:
    settings = dataclasses.replace(world.settings, storage_url=f"redis://127.0.0.1:{free_port()}/0")
    found = failed(await checklist(settings, youtube))
    assert list(found) == ["storage"]
    assert "STORAGE_URL" in found["storage"].fix


async def test_an_unset_key_is_generated_on_first_start_not_a_failure(
    world: World, youtube: FakeYouTube, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        world.settings, storage_url=f"sqlite:///{tmp_path}/data/g.db", token_encryption_key=""
    )
    checks = await checklist(settings, youtube)
    assert failed(checks) == {}
    assert "will be generated on first start" in checks["storage"].detail
    assert not (tmp_path / "data" / KEY_FILE).exists()  # the doctor changes nothing
    (tmp_path / "data" / KEY_FILE).write_text("damaged\n")
    found = failed(await checklist(settings, youtube))
    assert list(found) == ["storage"]
    assert "does not hold a valid encryption key" in found["storage"].detail


async def test_a_redirect_uri_spotify_refuses(world: World, youtube: FakeYouTube) -> None:
    settings = dataclasses.replace(
        world.settings, spotify_redirect_uri="http://localhost:8000/spotify/callback"
    )
    found = failed(await checklist(settings, youtube))
    assert list(found) == ["Spotify redirect URI"]
    assert "https://" in found["Spotify redirect URI"].fix


async def test_no_js_runtime(world: World, youtube: FakeYouTube) -> None:
    missing = YouTubeConfig(js_runtime_path="/nonexistent/deno")
    found = failed(await checklist(world.settings, youtube, yt_dlp=missing))
    assert list(found) == ["JavaScript runtime"]
    assert "deno" in found["JavaScript runtime"].fix


async def test_a_po_token_provider_that_does_not_answer(world: World, youtube: FakeYouTube) -> None:
    settings = dataclasses.replace(
        world.settings, youtube_pot_provider_url=f"http://127.0.0.1:{free_port()}"
    )
    found = failed(await checklist(settings, youtube))
    assert list(found) == ["PO-token provider"]
    assert "bgutil-provider" in found["PO-token provider"].fix


async def test_a_po_token_provider_that_answers(world: World, youtube: FakeYouTube) -> None:
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"server_uptime": 1, "version": "1.2.2"})

    app = web.Application()
    app.router.add_get("/ping", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        settings = dataclasses.replace(world.settings, youtube_pot_provider_url=url)
        checks = await checklist(settings, youtube)
    finally:
        await runner.cleanup()
    assert not failed(checks)
    assert "1.2.2" in checks["PO-token provider"].detail


async def test_online_when_youtube_refuses(world: World, youtube: FakeYouTube) -> None:
    youtube.page_status = 500
    found = failed(await checklist(world.settings, youtube, online=True))
    assert list(found) == ["resolve a known track"]
    assert "WARNING" in found["resolve a known track"].fix


async def test_online_is_skipped_after_a_failure(world: World, youtube: FakeYouTube) -> None:
    settings = dataclasses.replace(world.settings, discord_token="not-the-token")
    found = failed(await checklist(settings, youtube, online=True))
    assert list(found) == ["Discord token", "online smoke test"]
    assert youtube.counts.page_fetches == 0


def test_old_yt_dlp_and_spotdl_fail() -> None:
    old = {c.name: c for c in check_versions("2026.3.17", "4.5.2", TODAY)}
    assert not old["yt-dlp version"].ok
    assert "pip install -U 'yt-dlp[default]'" in old["yt-dlp version"].fix
    assert not old["spotDL version"].ok
    current = {c.name: c for c in check_versions("2026.10.26", "4.6.0", TODAY)}
    assert current["yt-dlp version"].ok and current["spotDL version"].ok


def test_bad_settings_are_each_a_failed_check_and_exit_1() -> None:
    def broken() -> Settings:
        raise SettingsError(["DISCORD_TOKEN is missing (the bot token)", "HTTP_PORT='x' is bad"])

    out = io.StringIO()
    assert doctor.main([], load=broken, out=out) == 1
    text = out.getvalue()
    assert "[FAIL] settings: DISCORD_TOKEN is missing" in text
    assert "[FAIL] settings: HTTP_PORT='x' is bad" in text
    assert "fix: set it in the environment or .env" in text
    assert "Traceback" not in text


def test_exit_code_follows_the_checklist(world: World) -> None:
    async def passing(settings: Settings, online: bool, track: str) -> list[Check]:
        return [Check("a", True, "fine")]

    async def failing(settings: Settings, online: bool, track: str) -> list[Check]:
        return [Check("a", True, "fine"), Check("b", False, "broken", "do this")]

    out = io.StringIO()
    assert doctor.main([], load=lambda: world.settings, run=passing, out=out) == 0
    assert doctor.main(["--online"], load=lambda: world.settings, run=failing, out=out) == 1
    assert "fix: do this" in out.getvalue()


def test_python_m_bot_doctor_is_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(doctor, "main", lambda argv: seen.append(argv) or 0)
    assert main(["doctor", "--online"]) == 0
    assert seen == [["--online"]]


async def test_discord_answering_something_other_than_json(
    world: World, youtube: FakeYouTube
) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", html)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        api = f"http://127.0.0.1:{port}/api/v10"
        settings = dataclasses.replace(world.settings, discord_api_base=api)
        found = failed(await checklist(settings, youtube))
    finally:
        await runner.cleanup()
    assert list(found) == ["Discord token"]
    assert "not JSON" in found["Discord token"].detail


async def test_online_when_the_resources_do_not_open(world: World, youtube: FakeYouTube) -> None:
    # Nothing listens there: open_resources raises (a StorageError, not a UserFacingError).
    settings = dataclasses.replace(world.settings, storage_url=f"redis://127.0.0.1:{free_port()}/0")
    (check,) = await doctor.check_online(settings, TRACK_ID)
    assert not check.ok
    assert "could not start the resolver" in check.detail
    assert "WARNING" in check.fix


async def test_a_loopback_public_base_url_is_flagged(world: World, youtube: FakeYouTube) -> None:
    local = dataclasses.replace(world.settings, public_base_url="http://127.0.0.1:8000")
    check = (await checklist(local, youtube))["public base URL"]
    assert check.ok and check.warn
    assert "PUBLIC_BASE_URL" in check.fix
    out = io.StringIO()
    doctor.report([check], out)
    assert "[warn] public base URL" in out.getvalue()
    assert out.getvalue().rstrip().endswith("All checks passed.")  # a warning fails nothing
    public = dataclasses.replace(world.settings, public_base_url="https://gn.example")
    assert not (await checklist(public, youtube))["public base URL"].warn


async def test_a_web_only_deployment_needs_no_discord_token(
    world: World, youtube: FakeYouTube
) -> None:
    before = len(world.discord.requests("GET"))
    settings = dataclasses.replace(world.settings, discord_token="")
    checks = await checklist(settings, youtube)
    assert not failed(checks), failed(checks)
    assert "web-only" in checks["Discord token"].detail
    assert len(world.discord.requests("GET")) == before  # Discord was not asked


def test_doctor_web_loads_settings_without_a_discord_token(world: World) -> None:
    settings = dataclasses.replace(world.settings, discord_token="")

    def without_token() -> Settings:
        raise SettingsError(["DISCORD_TOKEN is missing (the bot token)"])

    async def passing(settings: Settings, online: bool, track: str) -> list[Check]:
        return [Check("a", True, "fine")]

    out = io.StringIO()
    assert doctor.main([], load=without_token, out=out) == 1
    assert "python -m bot doctor --web" in out.getvalue()
    web_only = doctor.main(
        ["--web"], load=without_token, load_web=lambda: settings, run=passing, out=out
    )
    assert web_only == 0

"""yt-dlp as the resolver configures it: a JS runtime it finds, server settings that reach it,
and its warnings in our log at WARNING with their cause."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path

import pytest

from bot.services import youtube_config
from bot.settings import load_settings
from core.errors import ExtractionFailed
from core.youtube import YouTube, YouTubeConfig, YtDlpLog, cause_of
from core.ytargs import parse_extractor_args
from tests.bot.test_settings import MINIMAL
from tests.fakes.youtube import FakeYouTube


def test_yt_dlp_finds_the_js_runtime_in_the_venv() -> None:
    # The YoutubeDL options exactly as `python -m bot` builds the resolver's from the settings.
    settings = load_settings(MINIMAL, dotenv_path=None)
    youtube = YouTube(config=youtube_config(settings))
    try:
        runtime = youtube.js_runtime()
    finally:
        youtube.close()
    # The `deno` package's binary, found without PATH or configuration (yt-dlp #15012).
    assert runtime is not None
    assert runtime.startswith("deno ")


def test_server_settings_reach_yt_dlp() -> None:
    config = YouTubeConfig(
        cookies_file="/srv/cookies.txt",
        proxy="socks5://10.0.0.1:1080",
        source_address="192.0.2.7",
        extractor_args=parse_extractor_args("youtube:player_client=default,mweb"),
        pot_provider_url="http://bgutil:4416",
    )
    options = config.ydl_options()
    assert options["cookiefile"] == "/srv/cookies.txt"
    assert options["proxy"] == "socks5://10.0.0.1:1080"
    assert options["source_address"] == "192.0.2.7"
    assert options["extractor_args"] == {
        "youtube": {"player_client": ["default", "mweb"]},
        "youtubepot-bgutilhttp": {"base_url": ["http://bgutil:4416"]},
    }


@pytest.mark.parametrize(
    "bad", ["player_client=web", "youtube:", "youtube:player_client", ":x=1", "   "]
)
def test_bad_extractor_args_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - settings turn it into a message
        parse_extractor_args(bad)


def test_without_a_provider_address_no_po_token_is_fetched() -> None:
    # Else the installed bgutil plugin pings 127.0.0.1:4416 and warns on every extraction
    # that wants a token, though the README says it is only used when the address is set.
    assert YouTubeConfig().ydl_options()["extractor_args"] == {"youtube": {"fetch_pot": ["never"]}}
    own = YouTubeConfig(extractor_args=parse_extractor_args("youtube:fetch_pot=always"))
    assert own.ydl_options()["extractor_args"]["youtube"] == {"fetch_pot": ["always"]}
    with_provider = YouTubeConfig(pot_provider_url="http://bgutil:4416").ydl_options()
    assert "youtube" not in with_provider["extractor_args"]


def private_copies() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"gamenight-cookies-{os.getpid()}-*"))


async def test_the_operators_cookies_file_is_never_written(tmp_path: Path) -> None:
    cookies = tmp_path / "cookies.txt"
    original = (
        "# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t2000000000\tPREF\tf6=40000000\n"
    )
    cookies.write_text(original)
    cookies.chmod(0o444)  # a mounted secret: yt-dlp's save at close() must not touch it
    async with FakeYouTube() as fake:
        fake.add_video("abcdefghijk", "Some Song", ["Some Artist"], 200)
        youtube = YouTube(config=YouTubeConfig(base_url=fake.base_url, cookies_file=str(cookies)))
        try:
            extraction = await asyncio.to_thread(
                youtube.extract, "https://www.youtube.com/watch?v=abcdefghijk"
            )
        finally:
            youtube.close()  # YoutubeDL.close() saves its cookie jar
    assert extraction.stream_url
    assert cookies.read_text() == original
    assert not private_copies()  # the copy went with close()


def test_the_po_token_plugin_is_installed() -> None:
    from yt_dlp.extractor.youtube.pot._registry import _pot_providers  # noqa: PLC0415

    YouTube(config=YouTubeConfig(pot_provider_url="http://127.0.0.1:4416")).close()
    assert any("bgutil" in name.lower() for name in _pot_providers.value)


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ("[youtube] x: Sign in to confirm you’re not a bot.", "bot check"),
        ("[youtube] No supported JavaScript runtime could be found.", "no JavaScript runtime"),
        ("YouTube extraction without a JS runtime has been deprecated", "no JavaScript runtime"),
        ("[youtube] x: Some formats require a PO Token", "PO token"),
        ("ERROR: [youtube] x: Video unavailable", "unavailable"),
        # YouTube's session rate limit, not a dead video (yt-dlp #11426, #12958).
        (
            "ERROR: [youtube] x: Video unavailable. This content isn't available, try again "
            "later. The current session has been rate-limited by YouTube for up to an hour.",
            "rate-limiting",
        ),
        ("[youtube] x: This content isn\u2019t available, try again later.", "rate-limiting"),
        (
            "[pot:bgutil:http] Error reaching GET http://127.0.0.1:4416/ping (caused by "
            "TransportError). Please make sure that the server is reachable",
            "PO-token provider does not answer",
        ),
    ],
)
def test_yt_dlp_messages_name_their_cause(
    message: str, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert cause in cause_of(message)
    with caplog.at_level(logging.DEBUG, logger="core.youtube"):
        YtDlpLog().warning(message)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert cause in record.getMessage()


async def test_an_unavailable_video_reaches_our_log_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeYouTube() as fake:
        youtube = YouTube(config=YouTubeConfig(base_url=fake.base_url))
        try:
            with (
                caplog.at_level(logging.DEBUG, logger="core.youtube"),
                pytest.raises(ExtractionFailed),
            ):
                await asyncio.to_thread(
                    youtube.extract, "https://www.youtube.com/watch?v=gone0000000"
                )
        finally:
            youtube.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, caplog.text
    assert "the video is unavailable" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

"""`python -m bot index`: pre-resolve Spotify playlists into the stream cache.

    python -m bot index --playlist URL_OR_ID --as DISCORD_USER_ID   # read with their token
    python -m bot index --user DISCORD_USER_ID   # every playlist a linked user may read
    python -m bot index ... --concurrency 8 --watch 3600

Shows a progress bar on a terminal (a plain summary when the output is piped), then a summary:
resolved / already cached / failed, failures grouped by reason. `--watch` re-reads the playlists
and indexes again every N seconds until Ctrl-C or SIGTERM. Exit status: 0 done (or a watch
stopped), 1 finished with failed tracks or Spotify trouble, 2 bad input or configuration,
130 a one-off run interrupted (run it again: it continues where it stopped).

Spotify development mode reads only playlists the reading user owns or collaborates on: a
--user run skips (and lists) the others; a --playlist needs --as (or a single --user) naming
a linked user who owns it. A run the Spotify budget cannot carry is refused up front.

Only the Spotify and storage settings are needed (no DISCORD_TOKEN).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from rich.console import Console
from rich.logging import RichHandler

from bot.index_output import describe_plan, progress_bar, summary_lines
from bot.keyfile import KeyFileError, with_stored_key
from bot.services import open_resources
from bot.settings import INDEXER_KEYS, Settings, SettingsError, configure_logging, load_settings
from core.errors import NotFound, NotLinked, PlaylistNotReadable, TokenRevoked, UserFacingError
from core.indexer import (
    Indexer,
    Outcome,
    parse_playlist_id,
    unless_stopped,
)
from core.spotify import CallPriority, SpotifyClient
from storage.errors import StorageError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_CONCURRENCY = 64  # the resolver refuses more distinct tracks in flight well above this
BAD_INPUT = (NotFound, NotLinked, TokenRevoked, PlaylistNotReadable)


def _playlist(value: str) -> str:
    try:
        return parse_playlist_id(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _user_id(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a Discord user id (a number)")
    return int(value)


def _concurrency(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_CONCURRENCY}")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


class UsageError(Exception):
    """Bad command-line arguments; the message says which and why."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage block and exit; we print one line ourselves.
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m bot index",
        description="Pre-resolve Spotify playlists into Game Night's stream cache.",
    )
    parser.add_argument(
        "--playlist",
        action="append",
        default=[],
        type=_playlist,
        metavar="URL_OR_ID",
        help="a playlist: open.spotify.com link, spotify:playlist: URI or id (repeatable); "
        "read with the --as user's token",
    )
    parser.add_argument(
        "--as",
        dest="reader",
        type=_user_id,
        default=None,
        metavar="DISCORD_USER_ID",
        help="read --playlist with this linked user's token (Spotify lets a bot read only "
        "playlists its user owns or collaborates on); default: the --user when there is one",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        type=_user_id,
        metavar="DISCORD_USER_ID",
        help="every playlist of a user who ran /link that Spotify lets us read (their own and "
        "collaborative ones), with their token (repeatable)",
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        metavar="N",
        help="tracks resolved at once (default: RESOLVER_WORKERS, 4)",
    )
    parser.add_argument(
        "--watch",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="index again every SECONDS until Ctrl-C / SIGTERM",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the resolver does")
    return parser


# --- running -----------------------------------------------------------------------------------


async def index(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | Path | None = ".env",
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stop: asyncio.Event | None = None,
    ytmusic_client_factory: Callable[[], Any] | None = None,
    configure_logs: bool = False,
) -> int:
    """The whole command on the running loop; returns the exit status. Setting `stop` ends it
    as Ctrl-C would. `ytmusic_client_factory` points spotDL at a YouTube stand-in (tests)."""
    out = Console(file=stdout or sys.stdout, markup=False, highlight=False, soft_wrap=True)
    err = stderr or sys.stderr
    try:
        args = build_parser().parse_args(list(argv))
        if not args.playlist and not args.user:
            raise UsageError("nothing to index: give --playlist URL_OR_ID and/or --user ID")
    except UsageError as error:
        print(f"python -m bot index: {error} (see --help)", file=err)
        return EXIT_USAGE
    except SystemExit as exit_:  # --help has been printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        settings = with_stored_key(load_settings(environ, dotenv_path, required=INDEXER_KEYS))
    except SettingsError as error:
        print(error.report(), file=err)
        return EXIT_USAGE
    except KeyFileError as error:
        print(f"python -m bot index: {error}", file=err)
        return EXIT_USAGE
    if configure_logs:
        _logging(settings.log_level, args.verbose)
    stop = stop or asyncio.Event()
    concurrency = args.concurrency or settings.resolver_workers
    try:
        async with AsyncExitStack() as stack:
            res = await open_resources(
                stack,
                settings,
                resolver_workers=concurrency,
                ytmusic_client_factory=ytmusic_client_factory,
            )
            spotify, store, resolver = res.spotify, res.storage, res.resolver
            indexer = Indexer(
                spotify,
                resolver,
                store,
                concurrency=concurrency,
                min_validity_s=resolver.config.min_validity_s,
                calls_left=lambda: _background_calls_left(spotify),
            )
            return await _rounds(Job(indexer, args, settings, out, err, stop))
    except StorageError as error:
        print(f"Cannot open storage: {error}", file=err)
        return EXIT_USAGE


async def _background_calls_left(spotify: SpotifyClient) -> int:
    await spotify.quota.refresh()  # other processes spend the same budget
    return spotify.quota.left_for(CallPriority.BACKGROUND)


@dataclass(frozen=True)
class Job:
    """One invocation: the parsed arguments and what the rounds run with."""

    indexer: Indexer
    args: argparse.Namespace
    settings: Settings
    out: Console
    err: TextIO
    stop: asyncio.Event


async def _rounds(job: Job) -> int:
    watch: float | None = job.args.watch
    round_ = 0
    while True:
        round_ += 1
        if watch is not None:
            job.out.print(f"Run {round_} at {time.strftime('%H:%M:%S')}", style="bold")
        status = await _one_round(job, first=round_ == 1)
        if watch is None or status == EXIT_USAGE:
            return status
        if not job.stop.is_set():
            job.out.print(f"Next run in {watch:g} s (Ctrl-C to stop).")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(watch):
                    await job.stop.wait()
        if job.stop.is_set():
            job.out.print("Stopped watching.")
            return EXIT_OK


async def _one_round(job: Job, *, first: bool) -> int:
    out, err = job.out, job.err
    try:
        reader = job.args.reader
        if reader is None and len(job.args.user) == 1:
            reader = job.args.user[0]
        finished, plan = await unless_stopped(
            job.indexer.plan(job.args.playlist, job.args.user, reader), job.stop
        )
    except BAD_INPUT as error:
        print(error.message, file=err)
        # Bad input on the first run is the operator's typo; later, a playlist deleted
        # meanwhile should not end a watch.
        return EXIT_USAGE if first else EXIT_FAILED
    except UserFacingError as error:
        print(f"Spotify: {error.message}", file=err)
        return EXIT_FAILED
    if not finished or plan is None:
        out.print("Interrupted while reading the playlists.")
        return EXIT_INTERRUPTED
    out.print(describe_plan(plan))
    for skipped in plan.skipped:
        out.print(f"  skipped {skipped.name}: {skipped.reason}")
    bound = job.settings.stream_cache_max_entries
    if len(plan.tracks) > bound:
        out.print(
            f"Warning: {len(plan.tracks)} tracks but the cache keeps {bound} "
            "(STREAM_CACHE_MAX_ENTRIES): the oldest entries will be evicted.",
            style="yellow",
        )
    started = time.monotonic()
    with progress_bar(out) as progress:
        report = await job.indexer.run(plan, progress, job.stop)
    for line in summary_lines(report, time.monotonic() - started):
        out.print(line)
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.count(Outcome.FAILED) else EXIT_OK


# --- process entry -----------------------------------------------------------------------------


def _logging(settings_level: str, verbose: bool) -> None:
    level: int = logging.getLevelName(settings_level)
    level = min(level, logging.INFO) if verbose else max(level, logging.WARNING)
    console = Console(stderr=True)
    if console.is_terminal:
        # While the progress bar is live it captures sys.stderr, and this console writes to
        # whatever sys.stderr is at the time: log lines print above the bar, not into it.
        handler = RichHandler(console=console, show_path=False)
        logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    else:
        configure_logging(logging.getLevelName(level))


async def _main(argv: Sequence[str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await index(argv, stop=stop, configure_logs=True)


def main(argv: Sequence[str]) -> int:
    """`python -m bot index ARGS`: returns the exit status."""
    return asyncio.run(_main(argv))

"""`python -m bot import-songs mysql://user:pass@host[:port]/db`: move from the PWA's old backend.

The FastAPI service this project replaces kept `song_cache(spotify_id, music_url, song_url,
last_access)` in MySQL/MariaDB: `music_url` is the matched YouTube video (long-lived, worth
keeping: it saves a search per track), `song_url` the stream URL extracted from it (expired
long ago, and bound to the old server's IP anyway). We import the video matches only: each
becomes a stream-cache entry with an empty stream URL, which the resolver treats as "video
known, stream expired" and re-extracts on first use without searching again.

Idempotent: a track already in our cache is left alone (ours is at least as fresh), so a
second run imports nothing new. Bad rows are skipped with a reason and counted.
PyMySQL is an optional extra: `pip install '.[mysql]'`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote, urlsplit

import storage

try:  # the optional extra `mysql`: only this command needs it
    import pymysql
    import pymysql.cursors
except ImportError:  # pragma: no cover - exercised only without the extra
    pymysql = None

from bot.keyfile import KeyFileError, with_stored_key
from bot.settings import Settings, SettingsError, load_settings
from core.tracks import is_track_id
from storage.base import StreamCache
from storage.errors import StorageError
from storage.records import CachedStream

log = logging.getLogger(__name__)

EXIT_OK, EXIT_SOME_SKIPPED, EXIT_USAGE = 0, 1, 2
BATCH = 500
YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"}
VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
USAGE = "usage: python -m bot import-songs mysql://user:password@host[:port]/database [--table T]"


@dataclass(frozen=True)
class Source:
    host: str
    port: int
    user: str
    password: str
    database: str
    table: str = "song_cache"


@dataclass
class Report:
    imported: int = 0
    already_cached: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.imported + self.already_cached + sum(self.skipped.values())

    def lines(self) -> list[str]:
        out = [
            f"Read {self.total} rows: imported {self.imported} · already cached "
            f"{self.already_cached} · skipped {sum(self.skipped.values())}"
        ]
        out += [f"  skipped, {reason}: {n}" for reason, n in sorted(self.skipped.items())]
        return out


def parse_source(url: str, table: str = "song_cache") -> Source:
    """ValueError with a readable message for anything but mysql://user[:pw]@host[:port]/db."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
        raise ValueError("expected mysql://user:password@host[:port]/database")
    database = parts.path.lstrip("/")
    if not database:
        raise ValueError("the URL names no database (mysql://…@host/DATABASE)")
    if not re.fullmatch(r"[A-Za-z0-9_$]+", table):
        raise ValueError(f"{table!r} is not a plain table name")
    return Source(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=unquote(database),
        table=table,
    )


def video_url(music_url: object) -> str | None:
    """The canonical watch URL of a YouTube (Music) video link; None when it is not one."""
    if not isinstance(music_url, str) or not music_url.strip():
        return None
    parts = urlsplit(music_url.strip())
    host = (parts.hostname or "").lower()
    video = None
    if parts.scheme in ("http", "https") and host in YOUTUBE_HOSTS and parts.path == "/watch":
        video = next(iter(parse_qs(parts.query).get("v") or ()), None)
    elif parts.scheme in ("http", "https") and host == "youtu.be":
        video = parts.path.lstrip("/")
    if video is None or not VIDEO_ID.fullmatch(video):
        return None
    return f"https://www.youtube.com/watch?v={video}"


def epoch(value: object, now: float) -> float:
    """last_access as seconds since the epoch: DATETIME, a number, or missing (now)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)  # the old backend stored UTC
        return min(value.timestamp(), now)
    if isinstance(value, int | float) and value > 0:
        return min(float(value), now)
    return now


def check_row(row: Sequence[object]) -> tuple[str, str] | str:
    """(track id, video URL), or the reason the row is skipped."""
    spotify_id, music_url = row[0], row[1]
    if not isinstance(spotify_id, str) or not is_track_id(spotify_id.strip()):
        return "not a Spotify track id"
    url = video_url(music_url)
    if url is None:
        return "no YouTube video URL" if not music_url else "not a YouTube video URL"
    return spotify_id.strip(), url


def read_rows(source: Source) -> Generator[list[tuple[Any, ...]]]:
    """Blocking: the table's rows in batches (unbuffered, so a big table is not held whole)."""
    assert pymysql is not None  # run() checked
    connection = pymysql.connect(
        host=source.host,
        port=source.port,
        user=source.user,
        password=source.password,
        database=source.database,
        connect_timeout=10,
        cursorclass=pymysql.cursors.SSCursor,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT spotify_id, music_url, last_access FROM `{source.table}`")
            while batch := cursor.fetchmany(BATCH):
                yield list(batch)
    finally:
        connection.close()


async def import_rows(
    cache: StreamCache, batches: Iterator[list[tuple[Any, ...]]], now: float
) -> Report:
    report = Report()
    loop = asyncio.get_running_loop()
    while batch := await loop.run_in_executor(None, next, batches, None):
        for row in batch:
            checked = check_row(row)
            if isinstance(checked, str):
                report.skipped[checked] += 1
                log.debug("skipped %r: %s", row[:2], checked)
                continue
            track_id, url = checked
            if await cache.get_stream(track_id) is not None:
                report.already_cached += 1
                continue
            last = epoch(row[2], now)
            await cache.put_stream(
                CachedStream(
                    track_id=track_id,
                    video_url=url,
                    stream_url="",  # re-extracted on first use
                    expires_at=0.0,
                    resolved_at=last,
                    last_access=last,
                    title="",
                    duration_s=0.0,
                    score=0.0,  # not a score of ours: the old backend's match was not ranked
                )
            )
            report.imported += 1
    return report


async def run(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    args = list(argv)
    table = "song_cache"
    if "--table" in args:
        at = args.index("--table")
        table = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(USAGE, file=err if args[:1] != ["--help"] else out)
        return EXIT_USAGE if args[:1] not in (["-h"], ["--help"]) else EXIT_OK
    try:
        source = parse_source(args[0], table)
    except ValueError as exc:
        print(f"python -m bot import-songs: {exc}\n{USAGE}", file=err)
        return EXIT_USAGE
    if pymysql is None:
        print(
            "python -m bot import-songs needs PyMySQL: pip install '.[mysql]' "
            "(or .venv/bin/python -m pip install PyMySQL)",
            file=err,
        )
        return EXIT_USAGE
    try:
        settings = load_settings(required=())
    except SettingsError as exc:
        print(exc.report(), file=err)
        return EXIT_USAGE
    where = f"{source.host}:{source.port}/{source.database}.{source.table}"
    batches = read_rows(source)
    try:
        # The old database first: a wrong URL must not leave a data folder and a new key behind.
        first: list[tuple[Any, ...]] = await asyncio.get_running_loop().run_in_executor(
            None, next, batches, []
        )
        return await _import(settings, itertools.chain([first], batches), out, err)
    except pymysql.MySQLError as exc:
        print(f"python -m bot import-songs: cannot read {where}: {exc.args[-1]}", file=err)
        return EXIT_USAGE
    finally:
        batches.close()


async def _import(
    settings: Settings, batches: Iterator[list[tuple[Any, ...]]], out: TextIO, err: TextIO
) -> int:
    try:
        settings = with_stored_key(settings)
    except KeyFileError as exc:
        print(f"python -m bot import-songs: {exc}", file=err)
        return EXIT_USAGE
    try:
        store = await storage.open_storage(
            settings.storage_url, settings.cipher(), settings.stream_cache_max_entries
        )
    except StorageError as exc:
        print(f"python -m bot import-songs: {exc}", file=err)
        return EXIT_USAGE
    try:
        report = await import_rows(store, batches, time.time())
    except StorageError as exc:  # the rows written so far stay; running it again resumes
        print(f"python -m bot import-songs: storage failed during the import: {exc}", file=err)
        return EXIT_USAGE
    finally:
        await store.aclose()
    print("\n".join(report.lines()), file=out)
    return EXIT_SOME_SKIPPED if report.skipped else EXIT_OK


def main(argv: Sequence[str]) -> int:
    return asyncio.run(run(argv, sys.stdout, sys.stderr))

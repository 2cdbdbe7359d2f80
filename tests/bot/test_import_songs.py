"""`python -m bot import-songs`: the PWA's old song_cache table into our stream cache.

Runs against the machine's MariaDB (127.0.0.1:3306, root, no password; MARIADB_URL overrides),
in a database of its own that is dropped afterwards. Without a MariaDB it skips, except under
CI=true, where a missing MariaDB fails the run.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pymysql
import pytest
from cryptography.fernet import Fernet

import storage
from bot import import_songs
from storage.crypto import TokenCipher
from storage.records import CachedStream
from tests.conftest import free_port

SERVER_URL = os.environ.get("MARIADB_URL", "mysql://root@127.0.0.1:3306")
TRACK_A = "4PTG3Z6ehGkBFwjybzWkR8"
TRACK_B = "0VjIjW4GlUZAMYd2vXMi3b"
TRACK_C = "7qiZfU4dY1lWllzX7mPBI3"
OURS = "3n3Ppam7vgaVa1iaRUc9Lp"


def _connect(database: str | None = None) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    url = urlsplit(SERVER_URL)
    return pymysql.connect(
        host=url.hostname,
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=database,
        connect_timeout=3,
        autocommit=True,
    )


# pymysql's client error numbers: CR_CONNECTION_ERROR (socket), CR_CONN_HOST_ERROR (TCP).
NO_SERVER = {2002, 2003}


def _no_server(exc: pymysql.MySQLError) -> bool:
    return bool(exc.args) and exc.args[0] in NO_SERVER


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def test_only_a_missing_server_may_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pymysql.MySQLError) as nothing:
        pymysql.connect(host="127.0.0.1", port=free_port(), connect_timeout=3)
    assert _no_server(nothing.value)
    denied = pymysql.err.OperationalError(1045, "Access denied for user 'root'@'localhost'")
    assert not _no_server(denied)
    for value, ci in [("true", True), ("1", True), ("", False), ("false", False)]:
        monkeypatch.setenv("CI", value)
        assert _in_ci() is ci


@pytest.fixture
def old_backend() -> Iterator[str]:
    """A fresh database with the old backend's song_cache table; its mysql:// URL."""
    try:
        admin = _connect()
    except pymysql.MySQLError as exc:
        # Only "nothing answers" may skip, and never in CI: a server that refuses us (access
        # denied, no database) is a broken set-up that must show.
        if _in_ci() or not _no_server(exc):
            pytest.fail(f"MariaDB at {SERVER_URL} (CI={os.environ.get('CI', '')!r}): {exc}")
        pytest.skip(f"no MariaDB at {SERVER_URL}")
    name = f"gamenight_import_{secrets.token_hex(4)}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(
            f"CREATE TABLE `{name}`.song_cache (spotify_id VARCHAR(64) PRIMARY KEY, "
            "music_url TEXT, song_url TEXT, last_access DATETIME)"
        )
        rows = [
            (
                TRACK_A,
                "https://music.youtube.com/watch?v=dQw4w9WgXcQ",
                "https://rr1.x/old?expire=1",
            ),
            (TRACK_B, "https://youtu.be/9bZkp7q19f0", None),
            (TRACK_C, "https://www.youtube.com/watch?v=kJQP7kiw5Fk&t=3", ""),
            (OURS, "https://www.youtube.com/watch?v=aaaaaaaaaaa", ""),
            ("not-a-track-id", "https://www.youtube.com/watch?v=bbbbbbbbbbb", ""),
            ("1" * 22, "https://evil.example/watch?v=ccccccccccc", ""),
            ("2" * 22, None, "https://rr1.x/only-a-stream"),
        ]
        cur.executemany(
            f"INSERT INTO `{name}`.song_cache VALUES (%s, %s, %s, %s)",
            [(*row, dt.datetime(2025, 3, 1, 12, 0, 0)) for row in rows],
        )
    try:
        yield f"{SERVER_URL}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE `{name}`")
        admin.close()


async def run_import(
    url: str, db: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("STORAGE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", key)
    out, err = io.StringIO(), io.StringIO()
    status = await import_songs.run([url], out, err)
    return status, out.getvalue(), err.getvalue()


async def test_imports_video_matches_skips_bad_rows_and_is_idempotent(
    old_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    key = Fernet.generate_key().decode()
    db = tmp_path / "gamenight.db"
    store = await storage.open_storage(f"sqlite:///{db}", TokenCipher.from_keys(key))
    ours = CachedStream(OURS, "https://www.youtube.com/watch?v=zzzzzzzzzzz", "s", 9e9, 1, 1)
    await store.put_stream(ours)
    await store.aclose()

    status, out, err = await run_import(old_backend, db, monkeypatch, key)
    assert status == 1, err  # some rows were skipped
    assert "Read 7 rows: imported 3 · already cached 1 · skipped 3" in out
    assert "skipped, not a Spotify track id: 1" in out
    assert "skipped, not a YouTube video URL: 1" in out
    assert "skipped, no YouTube video URL: 1" in out

    store = await storage.open_storage(f"sqlite:///{db}", TokenCipher.from_keys(key))
    try:
        a = await store.get_stream(TRACK_A)
        assert a is not None
        assert a.video_url == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
        # The old stream URL is never trusted: empty, so the resolver re-extracts the video.
        assert (a.stream_url, a.expires_at) == ("", 0.0)
        assert a.last_access == dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC).timestamp()
        b, c = await store.get_stream(TRACK_B), await store.get_stream(TRACK_C)
        assert b is not None and b.video_url.endswith("v=9bZkp7q19f0")
        assert c is not None and c.video_url.endswith("v=kJQP7kiw5Fk")
        assert await store.get_stream(OURS) == ours  # our own match wins
        assert await store.count_streams() == 4
    finally:
        await store.aclose()

    again, out, _ = await run_import(old_backend, db, monkeypatch, key)
    assert again == 1
    assert "imported 0 · already cached 4 · skipped 3" in out


async def test_bad_urls_and_unreachable_servers_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    key = Fernet.generate_key().decode()
    db = tmp_path / "gamenight.db"
    status, _, err = await run_import("postgres://x/y", db, monkeypatch, key)
    assert status == 2 and "expected mysql://" in err
    status, _, err = await run_import("mysql://root@127.0.0.1:1/nowhere", db, monkeypatch, key)
    assert status == 2
    assert "cannot read 127.0.0.1:1/nowhere.song_cache" in err
    assert "Traceback" not in err
    # Without a key set: a wrong URL leaves no data folder and no generated key behind.
    data = tmp_path / "data"
    status, _, err = await run_import("mysql://root@127.0.0.1:1/x", data / "g.db", monkeypatch, "")
    assert status == 2 and "cannot read" in err
    assert not data.exists()


def test_video_urls_are_normalised_or_refused() -> None:
    assert import_songs.video_url("https://m.youtube.com/watch?v=dQw4w9WgXcQ&list=x") == (
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    )
    for bad in ("", None, "ftp://youtube.com/watch?v=dQw4w9WgXcQ", "https://youtube.com/watch"):
        assert import_songs.video_url(bad) is None

"""Clear errors when a backend cannot be opened or goes away mid-run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import StorageError, StorageUnavailable, TokenCipher, open_storage
from tests.conftest import free_port, redis_server


async def test_sqlite_path_that_cannot_exist(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageUnavailable, match="a-file"):
        await open_storage(f"sqlite:///{blocker}/gamenight.db", TokenCipher.generate())


async def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=999")
    db.close()
    with pytest.raises(StorageUnavailable, match="newer than this code"):
        await open_storage(f"sqlite:///{path}", TokenCipher.generate())


async def test_redis_nobody_listening() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(
        StorageUnavailable, match=r"Redis at redis://127\.0\.0\.1:\d+/0 is unreachable"
    ):
        await open_storage(url, TokenCipher.generate())


async def test_redis_dies_mid_run_then_errors_are_clear() -> None:
    with redis_server() as (url, proc):
        store = await open_storage(url, TokenCipher.generate())
        try:
            await store.ping()
            proc.kill()
            proc.wait(5)
            with pytest.raises(StorageUnavailable, match="unreachable"):
                await store.get_link(1)
            with pytest.raises(StorageUnavailable):
                await store.ping()
        finally:
            await store.aclose()


async def test_redis_url_password_is_not_repeated_in_errors() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(StorageUnavailable) as caught:
        await open_storage(url, TokenCipher.generate())
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("url", ["postgres://x/y", "sqlite:///", "sqlite://relative.db"])
async def test_bad_urls(url: str) -> None:
    with pytest.raises(StorageError):
        await open_storage(url, TokenCipher.generate())

"""Storage: one contract (storage.base), two backends chosen by URL scheme."""

from __future__ import annotations

from urllib.parse import urlsplit

from storage.base import Storage
from storage.crypto import TokenCipher
from storage.errors import StorageError, StorageUnavailable
from storage.redis_backend import RedisStorage
from storage.sqlite import SQLiteStorage

__all__ = ["Storage", "StorageError", "StorageUnavailable", "TokenCipher", "open_storage"]


async def open_storage(url: str, cipher: TokenCipher, max_streams: int = 10_000) -> Storage:
    """Open the backend `url` names: `sqlite:///relative.db`, `sqlite:////abs.db`, `redis://…`.

    Raises StorageUnavailable with a clear message when it cannot be reached or opened.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if not path or path == url:
            raise StorageError(f"bad SQLite URL {url!r}: expected sqlite:///path/to/file.db")
        return await SQLiteStorage.open(path, cipher, max_streams)
    if scheme in ("redis", "rediss"):
        return await RedisStorage.open(url, cipher, max_streams)
    raise StorageError(f"unsupported storage URL scheme {scheme!r}: use sqlite:/// or redis://")

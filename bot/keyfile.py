"""TOKEN_ENCRYPTION_KEY, when the operator leaves it unset: a key kept in the data folder.

Spotify tokens are encrypted at rest. With no key configured, the first start generates one
into `<data folder>/token-encryption.key` (mode 600) and every later start reads it back. The
trade-off, said once in the log: the key now sits next to the database it protects, so a copy
of the data folder (a backup, a stolen disk) can read the tokens, and losing the file loses
every link (players run /link again). A key set in the environment always wins, and rotation
works as before: put a new key first and this file's key after a comma.

With Redis storage several processes share the tokens and would each generate their own key:
there the key must be set.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from cryptography.fernet import Fernet

from bot.settings import Settings

log = logging.getLogger("bot")

KEY_FILE = "token-encryption.key"


class KeyFileError(Exception):
    """The key cannot be kept in the data folder; the message says what to do."""


def data_folder(storage_url: str) -> Path | None:
    """The SQLite database's folder; None for storage without one (Redis)."""
    if not storage_url.startswith("sqlite:///"):
        return None
    return Path(storage_url.removeprefix("sqlite:///")).parent


def new_key() -> str:
    return Fernet.generate_key().decode()


def with_stored_key(settings: Settings) -> Settings:
    """`settings` with a key: the configured one, else the data folder's (made on first use)."""
    if settings.token_encryption_key:
        return settings
    folder = data_folder(settings.storage_url)
    if folder is None:
        raise KeyFileError(
            "TOKEN_ENCRYPTION_KEY must be set with Redis storage (every process needs the same "
            "key): make one with `make key` or `.venv/bin/python -m bot keygen`"
        )
    path = folder / KEY_FILE
    try:
        key = path.read_text(encoding="ascii").strip() if path.exists() else ""
        if not key:
            key = _create(path)
            log.warning(
                "TOKEN_ENCRYPTION_KEY is not set, so a new key was written to %s (mode 600). "
                "Back that file up with the database: without it every player must /link "
                "again. Anyone with a copy of that folder can read the stored Spotify tokens; "
                "to keep the key apart from the data, set TOKEN_ENCRYPTION_KEY to its contents "
                "and delete the file.",
                path,
            )
    except OSError as exc:
        raise KeyFileError(f"cannot keep the encryption key in {path}: {exc.strerror}") from None
    return replace(settings, token_encryption_key=key)


def _create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key()
    # O_EXCL: two processes starting at once must not both write (the loser reads the winner's).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    return key

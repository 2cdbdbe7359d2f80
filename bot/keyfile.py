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
import tempfile
from dataclasses import replace
from pathlib import Path

from cryptography.fernet import Fernet

from bot.settings import Settings
from storage.crypto import TokenCipher

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
        created = False
        if path.exists():
            key = path.read_text(encoding="ascii", errors="replace").strip()
        else:
            key, created = _create(path)
    except OSError as exc:
        raise KeyFileError(f"cannot keep the encryption key in {path}: {exc.strerror}") from None
    try:
        TokenCipher.from_keys(key)
    except ValueError:
        # An empty or edited file: generating a new key would silently orphan every stored
        # token, so the operator decides (restore the file from a backup, or delete it).
        raise KeyFileError(
            f"{path} does not hold a valid encryption key (empty or damaged): restore it from "
            "a backup, or delete it to generate a new key (every player must then /link again)"
        ) from None
    if created:
        log.warning(
            "TOKEN_ENCRYPTION_KEY is not set, so a new key was written to %s (mode 600). "
            "Back that file up with the database: without it every player must /link "
            "again. Anyone with a copy of that folder can read the stored Spotify tokens; "
            "to keep the key apart from the data, set TOKEN_ENCRYPTION_KEY to its contents "
            "and delete the file.",
            path,
        )
    return replace(settings, token_encryption_key=key)


def _create(path: Path) -> tuple[str, bool]:
    """Write a new key to `path` unless another process got there first: (key, whether ours).

    The key is written in full to a private temporary file, then hard-linked into place: the
    link either appears complete or fails with FileExistsError, so a process starting at the
    same moment never reads a half-written (empty) file, and the loser reads the winner's key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{KEY_FILE}.")  # mode 600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(key + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text(encoding="ascii", errors="replace").strip(), False
    finally:
        os.unlink(tmp)
    return key, True

"""One bot process per SQLite file.

SQLite leases do not model time across processes (`leases_shared` is False: the store assumes
only this process commands), so a second bot on the same file would sync every guild a second
time. The bot role takes an exclusive advisory lock on `<db>.lock` for its whole life and a
second bot fails at once with a clear message. `python -m bot index` and `import-songs` open
the same file beside a running bot on purpose and take no lock.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

from bot.startup import StartupError


def lock_sqlite(storage_url: str) -> IO[str] | None:
    """Hold the lock for `storage_url` (None for Redis); close the file to release it."""
    if not storage_url.startswith("sqlite:///"):
        return None
    path = Path(storage_url.removeprefix("sqlite:///") + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StartupError(
            f"another Game Night bot is already running on {path.with_suffix('')}: stop it "
            "first, or give this one its own database (several bots need STORAGE_URL=redis://)"
        ) from None
    return lock

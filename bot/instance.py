"""This process's stable identity, so a restarted process gets its own guilds' leases back.

A sync lease names its holder. A process that died (`kill -9`) leaves its leases held until
they expire; a restarted process with a *new* name would wait that out, while one with the
same name re-acquires them at once. The identity is a random id kept in the data folder, one
per process slot: each running process holds an exclusive lock on its slot, so two processes
sharing a data folder (shards on one machine) never share an identity, and a restarted process
takes the first free slot, which is its predecessor's. `INSTANCE_ID` overrides it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

MAX_SLOTS = 64
_held: list[IO[str]] = []  # slot locks, held for the life of the process


def data_folder(storage_url: str) -> Path:
    """The SQLite database's folder, else ./data (Redis keeps no files of ours)."""
    if storage_url.startswith("sqlite:///"):
        return Path(storage_url.removeprefix("sqlite:///")).parent
    return Path("data")


def instance_id(folder: Path, configured: str | None = None) -> str:
    if configured:
        return configured
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for slot in range(MAX_SLOTS):
            lock = (folder / f"instance-{slot}.lock").open("a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue  # a live process holds this slot
            _held.append(lock)
            return _slot_id(folder / f"instance-{slot}.id")
    except OSError as error:
        log.warning(
            "cannot keep an instance id in %s (%s): a restart waits out its leases", folder, error
        )
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _slot_id(path: Path) -> str:
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = uuid.uuid4().hex
    path.write_text(value + "\n")
    return value

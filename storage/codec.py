"""Record <-> JSON-ready dict conversions shared by the backends."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from storage.base import SessionFields
from storage.errors import StorageError
from storage.records import HostSnapshot, ListenerState, ListenerStatus

# Consumed and expired OAuth states are kept this long so the callback page can tell a reused
# or expired link from a forged one.
STATE_RETENTION_S = 24 * 3600


def check_session_fields(fields: SessionFields) -> None:
    """Refuse names that are not session fields (in SQLite they become column names)."""
    unknown = set(fields) - set(SessionFields.__annotations__)
    if unknown:
        raise StorageError(f"not session fields: {sorted(unknown)}")


def state_key(state: str) -> str:
    # OAuth states are bearer secrets for ten minutes: keep only their hash at rest.
    return hashlib.sha256(state.encode()).hexdigest()


def dump_snapshot(snapshot: HostSnapshot | None) -> str | None:
    return None if snapshot is None else json.dumps(asdict(snapshot), separators=(",", ":"))


def load_snapshot(raw: str | bytes | None) -> HostSnapshot | None:
    return None if raw is None else HostSnapshot(**json.loads(raw))


def dump_listener(listener: ListenerState) -> str:
    return json.dumps(asdict(listener), separators=(",", ":"))


def load_listener(raw: str | bytes) -> ListenerState:
    data: dict[str, Any] = json.loads(raw)
    data["status"] = ListenerStatus(data["status"])
    return ListenerState(**data)


def encode_headers(headers: tuple[tuple[str, str], ...]) -> str:
    """Request headers as stored (JSON pairs; "" for none)."""
    return json.dumps([list(pair) for pair in headers]) if headers else ""


def decode_headers(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    return tuple((str(name), str(value)) for name, value in json.loads(text))

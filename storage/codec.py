"""Record <-> JSON-ready dict conversions shared by the backends."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from storage.records import HostSnapshot, ListenerState, ListenerStatus


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

"""Record <-> JSON-ready dict conversions shared by the backends."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from storage.base import SessionFields
from storage.crypto import TokenCipher
from storage.errors import StorageError
from storage.records import (
    HostSnapshot,
    LinkStatus,
    ListenerState,
    ListenerStatus,
    PendingLink,
    SpotifyLink,
)

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


def dump_pending(pending: PendingLink, cipher: TokenCipher) -> str:
    """The whole pending link encrypted: it carries the tokens and the form token."""
    link = asdict(pending.link)
    link["scopes"] = list(pending.link.scopes)
    data = {
        "form_token": pending.form_token,
        "expires_at": pending.expires_at,
        "vouch": pending.vouch,
        "link": link,
    }
    return cipher.encrypt(json.dumps(data, separators=(",", ":")))


def load_pending(state: str, blob: str, cipher: TokenCipher) -> PendingLink:
    try:
        data = json.loads(cipher.decrypt(blob))
        link = data["link"]
        return PendingLink(
            state=state,
            form_token=data["form_token"],
            expires_at=float(data["expires_at"]),
            vouch=data["vouch"],
            link=SpotifyLink(
                discord_user_id=int(link["discord_user_id"]),
                spotify_user_id=link["spotify_user_id"],
                display_name=link["display_name"],
                access_token=link["access_token"],
                refresh_token=link["refresh_token"],
                expires_at=float(link["expires_at"]),
                scopes=tuple(link["scopes"]),
                linked_at=float(link["linked_at"]),
                status=LinkStatus(link["status"]),
            ),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"a stored pending link is unreadable: {type(exc).__name__}") from exc


def encode_headers(headers: tuple[tuple[str, str], ...]) -> str:
    """Request headers as stored (JSON pairs; "" for none)."""
    return json.dumps([list(pair) for pair in headers]) if headers else ""


def decode_headers(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    return tuple((str(name), str(value)) for name, value in json.loads(text))

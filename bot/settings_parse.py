"""The parsing half of bot/settings.py: a reader that collects every problem, and the
validators of single values (each raises ValueError for a value it refuses).

bot/settings.py keeps the field list and load_settings; only it reads the environment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from core.ytargs import parse_extractor_args
from storage.crypto import TokenCipher

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Reader:
    """Reads typed values from a mapping and remembers every problem instead of stopping."""

    def __init__(self, env: Mapping[str, str], required: Collection[str]) -> None:
        self.env = env
        self.needed = required
        self.problems: list[str] = []

    def raw(self, key: str) -> str | None:
        value = self.env.get(key)
        return value.strip() if value is not None and value.strip() else None

    def required(self, key: str, what: str) -> str:
        value = self.raw(key)
        if value is None:
            if key in self.needed:
                self.problems.append(f"{key} is missing ({what})")
            return ""
        return value

    def parsed(
        self,
        key: str,
        default: T,
        parse: Callable[[str], T],
        expected: str,
        *,
        secret: bool = False,
    ) -> T:
        """`secret` keeps the value out of the report (it goes to stderr and container logs)."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            shown = key if secret else f"{key}={value!r}"
            self.problems.append(f"{shown} is not valid: expected {expected}")
            return default


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(value)
    return port


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(value)
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError(value)
    return number


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(value)
    return value.rstrip("/")


def _ws_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(value)
    return value


def _storage_url(value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in ("sqlite", "redis", "rediss"):
        raise ValueError(value)
    return value


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise ValueError(value)
    return level


def _redirect_uri(value: str) -> str:
    # Spotify accepts only HTTPS redirect URIs, or plain HTTP on a loopback IP literal
    # (it rejects `localhost` since 2025).
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.netloc:
        return value
    if parts.scheme == "http" and parts.hostname:
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                return value
        except ValueError:
            pass
    raise ValueError(value)


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    if not origins:
        raise ValueError(value)
    return origins


def _shard_ids(value: str) -> tuple[int, ...]:
    ids = tuple(sorted({int(part) for part in value.split(",") if part.strip()}))
    if not ids or ids[0] < 0:
        raise ValueError(value)
    return ids


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _proxy_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https", "socks4", "socks4a", "socks5", "socks5h"):
        raise ValueError(value)
    if not parts.hostname:
        raise ValueError(value)
    return value


def _networks(value: str) -> tuple[str, ...]:
    nets = tuple(
        str(ipaddress.ip_network(p.strip(), strict=False)) for p in value.split(",") if p.strip()
    )
    if not nets:
        raise ValueError(value)
    return nets


def _ip_address(value: str) -> str:
    return str(ipaddress.ip_address(value))


def _readable_file(value: str) -> str:
    if not Path(value).is_file():
        raise ValueError(value)
    return value


def _extractor_args(value: str) -> str:
    parse_extractor_args(value)
    return value


def _relay_secret(value: str) -> str:
    if len(value) < 16:
        raise ValueError(value)
    return value


def _fernet_keys(value: str) -> str:
    TokenCipher.from_keys(value)  # raises ValueError on a malformed key
    return value

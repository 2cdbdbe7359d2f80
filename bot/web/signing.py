"""Signed, expiring URLs of our audio relay (`GET /v1/relay/{key}?exp=...&sig=...`).

YouTube stream URLs only play from the address that extracted them, so browsers get a URL of
ours instead. The relay fetches YouTube on anyone's behalf, so its URLs are signed: only one
this server handed out (as a `/song` answer, a listen page, a redirect) is honoured, and only
until it expires. HMAC-SHA256 over the key and expiry with a server-side secret; no state.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import quote

RELAY_PATH = "/v1/relay/"
DEFAULT_TTL_S = 6 * 3600.0  # about a googlevideo URL's life: a PWA may hold it as long


def derive_secret(material: str) -> bytes:
    """A relay secret derived from other secret material (the token encryption key), so an
    operator need not set one more key; domain-separated so it reveals nothing about it."""
    return hmac.new(material.encode(), b"gamenight relay url v1", hashlib.sha256).digest()


class RelaySigner:
    """Makes and checks relay URLs. `base_url` is the public address browsers use."""

    def __init__(
        self,
        secret: bytes,
        base_url: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the relay secret must be at least 16 bytes")
        self._secret = secret
        # key -> (expiry, path) of the last URL made: answers within the same second share it
        # (same key, same expiry: the same signature), which spares an HMAC per cache hit.
        self._recent: dict[str, tuple[int, str]] = {}
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)
        self._base = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self._clock = clock

    def rebased(self, base_url: str) -> RelaySigner:
        """The same signer, for URLs on another base address (the doctor's private port)."""
        return RelaySigner(self._secret, base_url, ttl_s=self.ttl_s, clock=self._clock)

    def _signature(self, key: str, expires: int) -> str:
        mac = self._mac.copy()  # the keyed state is computed once, not per URL
        mac.update(f"{key}\n{expires}".encode())
        return mac.hexdigest()[:32]

    def url(self, key: str, *, until: float | None = None, absolute: bool = True) -> str:
        """A relay URL for a stream key (track id or claim key), valid for `ttl_s` or `until`.

        `until` gives a URL that stays the same for as long as the stream it points at (the
        listen page reloads its audio whenever the URL changes); `absolute=False` gives a path
        for pages this server serves itself.
        """
        expires = int(until if until is not None else self._clock() + self.ttl_s)
        recent = self._recent.get(key)
        if recent is not None and recent[0] == expires:
            path = recent[1]
        else:
            signature = self._signature(key, expires)
            path = f"{RELAY_PATH}{quote(key, safe='~')}?exp={expires}&sig={signature}"
            if len(self._recent) >= 4096:
                self._recent.clear()
            self._recent[key] = (expires, path)
        return self._base + path if absolute else path

    def check(self, key: str, expires: str, signature: str) -> bool:
        """Whether a relay URL's parts are ours and unexpired (constant-time comparison)."""
        try:
            when = int(expires)
        except ValueError:
            return False
        if when < self._clock():
            return False
        # Bytes, not str: compare_digest refuses a str with non-ASCII characters (TypeError).
        return hmac.compare_digest(signature.encode(), self._signature(key, when).encode())

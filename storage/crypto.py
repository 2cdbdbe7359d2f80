"""Encryption of Spotify tokens at rest.

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`. Several comma-separated keys may be
configured: the first encrypts, all decrypt, so a key can be rotated without a relink wave.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from storage.errors import StorageError


class TokenCipher:
    def __init__(self, fernet: MultiFernet) -> None:
        self._fernet = fernet

    @classmethod
    def from_keys(cls, keys: str) -> TokenCipher:
        """Build from comma-separated Fernet keys; ValueError when one is malformed."""
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("no encryption key given")
        try:
            return cls(MultiFernet([Fernet(k) for k in parts]))
        except (ValueError, TypeError) as exc:
            raise ValueError("not a Fernet key (32 url-safe base64-encoded bytes)") from exc

    @classmethod
    def generate(cls) -> TokenCipher:
        return cls(MultiFernet([Fernet(Fernet.generate_key())]))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except InvalidToken as exc:
            # Wrong or rotated-away key: say so instead of failing deep inside a sync loop.
            raise StorageError(
                "a stored token cannot be decrypted with TOKEN_ENCRYPTION_KEY "
                "(was the key changed without keeping the old one?)"
            ) from exc

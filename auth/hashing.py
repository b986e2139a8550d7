"""Keyed hashing of key secrets: HMAC-SHA256 with a server-side pepper.

The pepper lives in the gateway's settings, never in Redis, so a copy of Redis alone does
not allow checking guesses. Hashes bind the key id, so a hash cannot be moved to another
record. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac

from auth.keys import ApiKey


class KeyHasher:
    """Hashes and verifies key secrets with one pepper."""

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ValueError("the key pepper must be at least 16 bytes")
        self._pepper = pepper

    def hash(self, key: ApiKey) -> str:
        message = f"{key.id}:{key.secret}".encode("ascii")
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    def matches(self, key: ApiKey, stored_hash: str) -> bool:
        return hmac.compare_digest(self.hash(key), stored_hash)

"""The cache's Redis tier at the boundary, for unit tests: entries with a life left, the
single-flight locks, and an off switch. Integration tests use a real redis-server."""

from __future__ import annotations

import asyncio
import time

from gateway.cache.redis_tier import Lock, Lookup
from resilience import StoreUnavailable


class MemoryRedis:
    """Stands in for RedisTier: entries with a life left, locks, and an off switch."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.expires: dict[str, float] = {}  # key -> monotonic time its life ends
        self.locks: dict[bytes, str] = {}
        self.down = False

    @property
    def available(self) -> bool:
        return not self.down

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("down")

    def _left(self, key: str) -> float:
        return self.expires.get(key, float("inf")) - time.monotonic()

    async def get_while_locked(
        self, key: str, digest: bytes, grace_s: float
    ) -> tuple[bytes | None, bool]:
        self._check()
        if key in self.values and self._left(key) > grace_s:
            return self.values[key], True
        return None, digest in self.locks

    async def get_or_lock(self, key: str, digest: bytes, ttl_s: float, grace_s: float) -> Lookup:
        self._check()
        if key in self.values and self._left(key) > grace_s:
            return Lookup(fresh=self.values[key])
        stale = self.values.get(key)
        if digest in self.locks:
            return Lookup(lock=Lock.HELD_ELSEWHERE, stale=stale)
        self.locks[digest] = token = f"token-{len(self.locks)}"
        return Lookup(lock=Lock.TAKEN, token=token, stale=stale)

    async def set(self, key: str, value: bytes, ttl_s: float, digest: bytes, token: str) -> None:
        self._check()
        self.values[key] = value
        self.expires[key] = time.monotonic() + ttl_s
        if token and self.locks.get(digest) == token:
            del self.locks[digest]

    def set_soon(
        self, key: str, value: bytes, ttl_s: float, digest: bytes, token: str
    ) -> asyncio.Future[None]:
        return asyncio.ensure_future(self.set(key, value, ttl_s, digest, token))

    async def unlock(self, digest: bytes, token: str) -> None:
        self._check()
        if self.locks.get(digest) == token:
            del self.locks[digest]

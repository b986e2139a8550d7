"""The shared tier: signed entries in Redis, always with a TTL, plus the single-flight lock.

Layout (every cache key carries a TTL, so `volatile-lru` may evict it; key records, which
carry none, are never evicted):

    gateway:cache:<model>:<version>:{<hex digest>} entry (see entry.py), PX = model TTL
                                                    + its stale-if-error grace (an entry
                                                    whose PTTL is within the grace is stale)
    gateway:cache-lock:{<hex digest>}               single-flight lock, PX = lock TTL

The digest in braces is a Redis Cluster hash tag: an entry and its lock live in the same
slot, so the scripts that touch both run on one node. A `{` in a model name is written
`%7B` (and `%` as `%25`), so the digest's braces are always the first.
    gateway:cache-purge                             pub/sub channel of purge events

Every call goes through the circuit breaker and raises `StoreUnavailable` on failure (the
future of `set_soon` fails with the Redis error instead): the caller treats that as a miss
(fail-open).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
import redis.asyncio as aioredis

from gateway.backends.redis.client import RELEASE_IF_OWNED, subscribed
from gateway.backends.redis.pipelining import script_calls
from resilience import CircuitBreaker

ENTRY_PREFIX = "gateway:cache:"
LOCK_PREFIX = "gateway:cache-lock:"
PURGE_CHANNEL = "gateway:cache-purge"

# One round trip before a miss is computed: a fresh entry, or else the single-flight lock
# (and the entry if it is only stale: within its stale-if-error grace, ARGV[3] ms).
# Returns {1, entry} | {0, locked} | {2, locked, stale entry}; locked: 1 taken, 0 held by
# another caller.
_GET_OR_LOCK = """
local value = redis.call('GET', KEYS[1])
if value and redis.call('PTTL', KEYS[1]) > tonumber(ARGV[3]) then return {1, value} end
local locked = 0
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then locked = 1 end
if value then return {2, locked, value} end
return {0, locked}
"""
# While waiting for another process's entry: {1, entry} if it is fresh (more than ARGV[1]
# ms of its life left), else {0, whether the single-flight lock is still held}.
_GET_WHILE_LOCKED = """
local value = redis.call('GET', KEYS[1])
if value and redis.call('PTTL', KEYS[1]) > tonumber(ARGV[1]) then return {1, value} end
return {0, redis.call('EXISTS', KEYS[2])}
"""
# One round trip after: store the entry and release the lock if it is still ours.
_SET_AND_RELEASE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


class Lock(Enum):
    """Where a key's single-flight lock stands after one look."""

    TAKEN = "taken"  # this caller holds it (its token): compute, the store releases it
    HELD_ELSEWHERE = "held elsewhere"  # another caller computes: wait for its entry
    NOT_TAKEN = "not taken"  # no lock was asked for (a fresh entry, Redis down): compute


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one look before a miss found: a fresh entry, or else the lock, and perhaps a
    stale entry (past its TTL, within its stale-if-error grace)."""

    fresh: bytes | None = None
    lock: Lock = Lock.NOT_TAKEN
    token: str = ""  # the lock's, when TAKEN
    stale: bytes | None = None


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def entry_key(model: str, version: str, digest: bytes) -> str:
    return f"{ENTRY_PREFIX}{_tag_safe(model)}:{version}:{{{digest.hex()}}}"


def lock_key(digest: bytes) -> str:
    return f"{LOCK_PREFIX}{{{digest.hex()}}}"


def _tag_safe(text: str) -> str:
    return text.replace("%", "%25").replace("{", "%7B")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _grace_ms(seconds: float) -> int:
    """A stale-if-error grace in ms; 0 stays 0 (no grace: every entry alive is fresh)."""
    return _ms(seconds) if seconds else 0


def _escaped(text: str) -> str:
    return _GLOB_SPECIALS.sub(r"\\\1", text)


class RedisTier:
    """Cache entries and locks in Redis."""

    def __init__(self, client: aioredis.Redis, breaker: CircuitBreaker) -> None:
        self._redis = client
        self._breaker = breaker
        self._scripts = script_calls(client)
        self._get_or_lock = client.register_script(_GET_OR_LOCK)
        self._get_while_locked = client.register_script(_GET_WHILE_LOCKED)
        self._set_and_release = client.register_script(_SET_AND_RELEASE)
        self._release = client.register_script(RELEASE_IF_OWNED)

    @property
    def available(self) -> bool:
        """False while its breaker is open (Redis failed the last calls)."""
        return not self._breaker.is_open

    def close(self) -> None:
        """Close the connection of the cache's script calls (the client closes its own)."""
        self._scripts.close()

    async def get_while_locked(
        self, key: str, digest: bytes, grace_s: float
    ) -> tuple[bytes | None, bool]:
        """The entry if it has more than its stale grace `grace_s` left to live, else None;
        and whether the key's single-flight lock is still held."""
        answer = await self._breaker.call(
            lambda: self._scripts.run(
                self._get_while_locked, [key, lock_key(digest)], [_grace_ms(grace_s)]
            )
        )
        if answer[0] == 1:
            return _bytes(answer[1]), True
        return None, bool(answer[1])

    async def get_or_lock(
        self, key: str, digest: bytes, lock_ttl_s: float, grace_s: float
    ) -> Lookup:
        """A fresh entry; or else whether this caller now holds the single-flight lock, with
        the entry if it is stale (past its TTL, within its grace `grace_s`)."""
        token = secrets.token_hex(8)
        answer = await self._breaker.call(
            lambda: self._scripts.run(
                self._get_or_lock,
                [key, lock_key(digest)],
                [token, _ms(lock_ttl_s), _grace_ms(grace_s)],
            )
        )
        if answer[0] == 1:
            return Lookup(fresh=_bytes(answer[1]))
        stale = _bytes(answer[2]) if answer[0] == 2 else None
        if answer[1]:
            return Lookup(lock=Lock.TAKEN, token=token, stale=stale)
        return Lookup(lock=Lock.HELD_ELSEWHERE, stale=stale)

    def set_soon(
        self, key: str, value: bytes, ttl_s: float, digest: bytes, token: str
    ) -> asyncio.Future[Any] | None:
        """Store an entry and release the lock `token` (if given and still ours), without
        waiting: the future of Redis's answer (failed with a Redis error if it failed), or
        None when the circuit is open. The call joins this event-loop turn's pipeline."""
        if not self._breaker.allow():
            return None
        answer = self._scripts.submit(
            self._set_and_release, [key, lock_key(digest)], [value, _ms(ttl_s), token]
        )
        answer.add_done_callback(self._breaker.record)
        return answer

    async def unlock(self, digest: bytes, token: str) -> None:
        await self._breaker.call(
            lambda: self._scripts.run(self._release, [lock_key(digest)], [token])
        )

    async def purge(self, model: str | None, version: str | None) -> int:
        """Delete matching entries (SCAN + UNLINK) and tell every process to drop its copies."""
        pattern = ENTRY_PREFIX + (
            "*"
            if model is None
            else f"{_escaped(_tag_safe(model))}:{'*' if version is None else _escaped(version)}:*"
        )

        async def scan_and_unlink() -> int:
            deleted = 0
            batch: list[bytes] = []
            async for key in self._redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += await self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += await self._redis.unlink(*batch)
            await self._redis.publish(
                PURGE_CHANNEL, orjson.dumps({"model": model, "version": version})
            )
            return deleted

        deleted: int = await self._breaker.call(scan_and_unlink)
        return deleted

    async def purge_events(self) -> AsyncIterator[tuple[str | None, str | None]]:
        """Purges announced by any process, as (model, version); ends when Redis fails."""
        pubsub = await subscribed(self._redis, PURGE_CHANNEL)
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                event = orjson.loads(message["data"])
                yield event.get("model"), event.get("version")
        finally:
            # Untyped before redis-py 8.2, typed since: the ignore holds on either.
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

"""Where key records live: a small interface, with Redis and in-memory implementations.

Redis layout (no TTL on any of it: keys must never be evicted; the embedded Redis runs
with `maxmemory-policy volatile-lru`, which only evicts entries that have a TTL):

    gateway:auth:key:<id>   hash: one field per KeyRecord attribute
    gateway:auth:keys       set of every key id (for listing)
    gateway:auth:changes    pub/sub channel: the id of every key whose record changed
    gateway:auth:sentinel   string: when this store was first used (its data is there)

Every script and transaction touches one key, so all of it works on a Redis Cluster (the
record and the index may live on different nodes: a record is written before its id is
added to the index, so a listing never names a record that does not exist).

Fields are updated one at a time (`HSET`), so recording `last_used_at` can never undo a
concurrent revocation. A change that matters to authentication (revocation, expiry; not
`last_used_at`) is announced on the channel in the same script, so every gateway process
that remembers the key forgets it at once (`RedisKeyStore.changed_keys`).

A Redis that comes back empty (FLUSHALL, a replica promoted without data) must not turn
every key into an unknown one (401 for all, the admin key included, and nothing logged).
The sentinel tells the two apart: written with the first record (`claim` at start-up, and
every `put`), it is looked at whenever a record is missing. Missing too: `StoreEmptied`,
an outage for authentication (remembered keys keep working, others get 503), until the
records are restored (`gateway keys import`, or Redis's own backup) and the sentinel with
them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
import redis.asyncio as aioredis

from auth.records import KeyRecord
from resilience.breaker import CircuitBreaker
from resilience.errors import StoreUnavailable

T = TypeVar("T")

RECORD_PREFIX = "gateway:auth:key:"
INDEX = "gateway:auth:keys"
CHANGES = "gateway:auth:changes"
SENTINEL = "gateway:auth:sentinel"


class StoreEmptied(StoreUnavailable):
    """Redis answers, but the key store's data is gone (its sentinel is missing)."""

    def __init__(self) -> None:
        super().__init__(
            f"the key store's data is gone ({SENTINEL} is missing: FLUSHALL, or a replica "
            "promoted without data); remembered keys keep working; restore the keys with "
            "`gateway keys import` or from a Redis backup"
        )


# Set fields of an existing record; announce the change on channel ARGV[2] (the key id in
# ARGV[3]) when ARGV[1] is "1".
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[1] == '1' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 1
"""


class KeyStore(Protocol):
    """Persistence of key records. Implementations raise `StoreUnavailable` when down."""

    async def get(self, key_id: str) -> KeyRecord | None: ...

    async def put(self, record: KeyRecord) -> None: ...

    async def list(self) -> list[KeyRecord]: ...

    async def update(self, key_id: str, **fields: float | None) -> None: ...


def _encode(record: KeyRecord) -> dict[str, str]:
    return {name: orjson.dumps(value).decode() for name, value in record.model_dump().items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(fields: dict[bytes | str, bytes | str]) -> KeyRecord:
    return KeyRecord.model_validate({_text(k): orjson.loads(v) for k, v in fields.items()})


class RedisKeyStore:
    """Key records in Redis; every call goes through the circuit breaker."""

    def __init__(self, client: aioredis.Redis, breaker: CircuitBreaker) -> None:
        self._redis = client
        self._breaker = breaker
        self._update = client.register_script(_UPDATE)

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        return await self._breaker.call(operation)

    async def get(self, key_id: str) -> KeyRecord | None:
        """The record, or None for an id the store does not know; `StoreEmptied` when the
        record is missing because the store's data is gone."""
        fields = await self._call(lambda: self._redis.hgetall(RECORD_PREFIX + key_id))
        if fields:
            return _decode(fields)
        if not await self._call(lambda: self._redis.exists(SENTINEL)):
            raise StoreEmptied
        return None

    async def put(self, record: KeyRecord) -> None:
        async def write() -> Any:
            await self._redis.hset(RECORD_PREFIX + record.id, mapping=_encode(record))  # type: ignore[arg-type]
            await self._redis.set(SENTINEL, str(time.time()), nx=True)
            return await self._redis.sadd(INDEX, record.id)

        await self._call(write)

    async def claim(self) -> bool:
        """At start-up: write the sentinel if it is missing; True if the store then holds
        no key at all (a new store, or one whose data was lost: the caller says so)."""

        async def check() -> bool:
            await self._redis.set(SENTINEL, str(time.time()), nx=True)
            return int(await self._redis.scard(INDEX)) == 0

        return await self._call(check)

    async def list(self) -> list[KeyRecord]:
        async def read_all() -> list[KeyRecord]:
            ids = sorted(_text(i) for i in await self._redis.smembers(INDEX))
            async with self._redis.pipeline(transaction=False) as pipe:
                for key_id in ids:
                    pipe.hgetall(RECORD_PREFIX + key_id)
                rows = await pipe.execute()
            return [_decode(row) for row in rows if row]

        return await self._call(read_all)

    async def update(self, key_id: str, **fields: float | None) -> None:
        """Set some fields of an existing record (no-op for an unknown id); a change of
        anything but `last_used_at` is announced to every process."""
        encoded = {name: orjson.dumps(value).decode() for name, value in fields.items()}
        announce = "1" if set(fields) - {"last_used_at"} else "0"
        arguments = [announce, CHANGES, key_id, *(i for pair in encoded.items() for i in pair)]
        keys = [RECORD_PREFIX + key_id]
        await self._call(lambda: self._update(keys=keys, args=arguments))

    async def changed_keys(self) -> AsyncIterator[str]:
        """Ids of keys changed by any process, as announced; ends when Redis fails."""
        await self._redis.initialize()  # a cluster client learns its slots before it subscribes
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANGES)
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield _text(message["data"])
        finally:
            # Untyped before redis-py 8.2, typed since: the ignore holds on either.
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


class InMemoryKeyStore:
    """Key records in a dict: for unit tests and tools that need no Redis."""

    def __init__(self) -> None:
        self.records: dict[str, KeyRecord] = {}

    async def get(self, key_id: str) -> KeyRecord | None:
        return self.records.get(key_id)

    async def put(self, record: KeyRecord) -> None:
        self.records[record.id] = record

    async def list(self) -> list[KeyRecord]:
        return [self.records[key_id] for key_id in sorted(self.records)]

    async def update(self, key_id: str, **fields: float | None) -> None:
        if key_id in self.records:
            self.records[key_id] = self.records[key_id].model_copy(update=fields)

"""Where key records live: a small interface, with Redis and in-memory implementations.

Redis layout (no TTL on any of it: keys must never be evicted; the embedded Redis runs
with `maxmemory-policy volatile-lru`, which only evicts entries that have a TTL):

    gateway:auth:key:<id>   hash: one field per KeyRecord attribute
    gateway:auth:keys       set of every key id (for listing)

Fields are updated one at a time (`HSET`), so recording `last_used_at` can never undo a
concurrent revocation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
import redis.asyncio as aioredis

from auth.breaker import CircuitBreaker
from auth.records import KeyRecord

T = TypeVar("T")

RECORD_PREFIX = "gateway:auth:key:"
INDEX = "gateway:auth:keys"


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

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        return await self._breaker.call(operation)

    async def get(self, key_id: str) -> KeyRecord | None:
        fields = await self._call(lambda: self._redis.hgetall(RECORD_PREFIX + key_id))
        return _decode(fields) if fields else None

    async def put(self, record: KeyRecord) -> None:
        async def write() -> Any:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(RECORD_PREFIX + record.id, mapping=_encode(record))  # type: ignore[arg-type]
                pipe.sadd(INDEX, record.id)
                return await pipe.execute()

        await self._call(write)

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
        """Set some fields of an existing record (no-op for an unknown id)."""
        encoded = {name: orjson.dumps(value).decode() for name, value in fields.items()}
        script = (
            "if redis.call('EXISTS', KEYS[1]) == 1 then "
            "return redis.call('HSET', KEYS[1], unpack(ARGV)) end return 0"
        )
        arguments = [item for pair in encoded.items() for item in pair]
        await self._call(lambda: self._redis.eval(script, 1, RECORD_PREFIX + key_id, *arguments))


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

"""What gateway replicas tell each other, through Redis, about changes to Triton's models.

    gateway:lifecycle-lock:<model>    held (with a TTL) by the replica changing the model
    gateway:model-generations         hash: model -> how many (re)loads replicas have made

A replica changing a model (publish, unload) holds the model's lock, and counts a
generation after every load it makes, when the files on disk are the ones Triton loaded.
Every replica's catalog reads both on each refresh (one round trip): a model whose
generation moved while no one holds its lock was reloaded by another replica, so its
files are adopted as the loaded artifact, exactly as the changing replica adopted them;
a model whose lock is held is mid-change, so its changed files are neither adopted nor
warned about. Without this, only the replica that made a change knew it was a reload.

Every call goes through the circuit breaker and raises `StoreUnavailable` when Redis fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.backends.redis.client import RELEASE_IF_OWNED
from resilience import CircuitBreaker

LOCK_PREFIX = "gateway:lifecycle-lock:"
GENERATIONS = "gateway:model-generations"


@dataclass(frozen=True, slots=True)
class SharedModelState:
    generations: dict[str, int]
    changing: frozenset[str]


class ModelChanges:
    """Model change locks and reload generations shared by every gateway replica."""

    def __init__(self, client: aioredis.Redis, breaker: CircuitBreaker) -> None:
        self._redis = client
        self._breaker = breaker
        self._release = client.register_script(RELEASE_IF_OWNED)

    async def lock(self, model: str, token: str, ttl_ms: int) -> bool:
        taken = await self._breaker.call(
            lambda: self._redis.set(LOCK_PREFIX + model, token, nx=True, px=ttl_ms)
        )
        return bool(taken)

    async def unlock(self, model: str, token: str) -> None:
        await self._breaker.call(lambda: self._release(keys=[LOCK_PREFIX + model], args=[token]))

    async def reloaded(self, model: str) -> None:
        """Triton has just (re)loaded `model` from the files now on disk."""
        await self._breaker.call(lambda: self._redis.hincrby(GENERATIONS, model, 1))

    async def state(self, models: Iterable[str]) -> SharedModelState:
        names = sorted(set(models))

        async def read() -> tuple[dict[bytes, bytes], list[bytes | None]]:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(GENERATIONS)
                for name in names:  # one GET each: the locks may live on different nodes
                    pipe.get(LOCK_PREFIX + name)
                results = await pipe.execute()
            return results[0], results[1:]

        generations, locks = await self._breaker.call(read)
        return SharedModelState(
            {_text(k): int(v) for k, v in generations.items()},
            frozenset(name for name, lock in zip(names, locks, strict=True) if lock is not None),
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

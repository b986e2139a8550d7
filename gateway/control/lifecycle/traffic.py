"""Traffic splits: how requests that name no version are shared among a model's versions.

A split is weights per version (e.g. {"1": 90, "3": 10}), optionally sticky: a key then
always gets the same version (a stable hash of key id and model picks it), so a client
sees consistent answers during a canary. It may also name a shadow version and the share
of requests mirrored to it (`gateway.control.lifecycle.shadow`): evidence for a promotion, no
traffic. Splits live in Redis without a TTL, so they
survive restarts and are shared by every gateway process:

    gateway:traffic:<model>          the current split (JSON); absent: Triton's default
    gateway:traffic-history:<model>  earlier splits, newest first (rollback pops one)

The request path reads splits from memory only; every process refreshes them from Redis
every GATEWAY_CATALOG_REFRESH_S, and at once after changing one itself. While Redis is
down the last splits read stay in force.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis

from gateway.runtime.repeating import Repeating
from resilience import CircuitBreaker

PREFIX = "gateway:traffic:"
HISTORY = "gateway:traffic-history:"
HISTORY_LENGTH = 20


@dataclass(frozen=True)
class Shadow:
    """A version that gets a copy of `percent` % of the model's requests, answered by
    another version; its answers are compared, never returned or cached."""

    version: str
    percent: float

    def as_dict(self) -> dict[str, object]:
        return {"version": self.version, "percent": self.percent}


@dataclass(frozen=True)
class TrafficSplit:
    """Weights per version for unversioned requests, and an optional shadow."""

    weights: dict[str, int] = field(default_factory=dict)
    sticky: bool = False
    shadow: Shadow | None = None
    # The version that served the model's traffic when this split was made, by the last
    # promotion (or the default a publish pinned): what the quality gate compares a
    # candidate with, whatever shares a canary gives out meanwhile.
    serving: str | None = None

    def mirrors(self) -> bool:
        """Whether this request is one to mirror (drawn with the shadow's share)."""
        return self.shadow is not None and random.random() * 100 < self.shadow.percent  # noqa: S311

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {"weights": self.weights, "sticky": self.sticky}
        if self.shadow is not None:
            described["shadow"] = self.shadow.as_dict()
        if self.serving is not None:
            described["serving"] = self.serving
        return described

    def choose(self, model: str, ready: Collection[str], key_id: str) -> str | None:
        """The version for one request; None when no weighted version is ready."""
        candidates = [(v, w) for v, w in sorted(self.weights.items()) if w > 0 and v in ready]
        if not candidates:
            return None
        total = sum(w for _, w in candidates)
        if self.sticky:
            digest = hashlib.blake2b(f"{model}\0{key_id}".encode(), digest_size=8).digest()
            point = int.from_bytes(digest, "big") % total
        else:
            point = random.randrange(total)  # noqa: S311 - load balancing, not security
        for version, weight in candidates:
            if point < weight:
                return version
            point -= weight
        return candidates[-1][0]

    def primary(self) -> str | None:
        """The version taking the most traffic."""
        weighted = [(w, int(v) if v.isdigit() else 0, v) for v, w in self.weights.items() if w > 0]
        return max(weighted)[2] if weighted else None

    def to_json(self) -> bytes:
        return orjson.dumps(self.describe())

    @classmethod
    def from_json(cls, data: bytes | str) -> TrafficSplit:
        document = orjson.loads(data)
        weights = {str(v): int(w) for v, w in document.get("weights", {}).items()}
        shadow = document.get("shadow")
        serving = document.get("serving")
        return cls(
            weights,
            bool(document.get("sticky", False)),
            Shadow(str(shadow["version"]), float(shadow["percent"])) if shadow else None,
            str(serving) if serving is not None else None,
        )


class TrafficSplits:
    """The current splits, kept in memory and in Redis."""

    def __init__(self, client: aioredis.Redis, breaker: CircuitBreaker, refresh_s: float) -> None:
        self._redis = client
        self._breaker = breaker
        self._splits: dict[str, TrafficSplit] = {}
        self._refreshing = Repeating(
            "traffic-splits", refresh_s, self.refresh, "traffic splits not refreshed"
        )

    def get(self, model: str) -> TrafficSplit | None:
        return self._splits.get(model)

    def all(self) -> dict[str, TrafficSplit]:
        return dict(self._splits)

    async def refresh(self) -> None:
        async def read() -> dict[str, TrafficSplit]:
            splits = {}
            async for key in self._redis.scan_iter(match=PREFIX + "*", count=500):
                name = key.decode() if isinstance(key, bytes) else key
                value = await self._redis.get(name)
                if value is not None:
                    splits[name.removeprefix(PREFIX)] = TrafficSplit.from_json(value)
            return splits

        self._splits = await self._breaker.call(read)

    async def set(self, model: str, split: TrafficSplit | None) -> None:
        """Make `split` current (None: back to Triton's default), keeping the old one."""
        current = self._splits.get(model)

        async def write() -> None:
            # Not a transaction: the history and the split may live on different Redis
            # Cluster nodes (changes to one model are serialized by its lifecycle lock).
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.lpush(HISTORY + model, current.to_json() if current else b"null")
                pipe.ltrim(HISTORY + model, 0, HISTORY_LENGTH - 1)
                if split is None:
                    pipe.delete(PREFIX + model)
                else:
                    pipe.set(PREFIX + model, split.to_json())
                await pipe.execute()

        await self._breaker.call(write)
        self._remember(model, split)

    async def rollback(self, model: str) -> TrafficSplit | None:
        """Restore the split before the current one; LookupError when there is none."""
        previous = await self._breaker.call(lambda: self._redis.lpop(HISTORY + model))
        if previous is None or isinstance(previous, list):
            raise LookupError(model)
        split = None if previous in (b"null", "null") else TrafficSplit.from_json(previous)

        async def write() -> None:
            if split is None:
                await self._redis.delete(PREFIX + model)
            else:
                await self._redis.set(PREFIX + model, split.to_json())

        await self._breaker.call(write)
        self._remember(model, split)
        return split

    def start(self) -> None:
        self._refreshing.start()

    async def close(self) -> None:
        await self._refreshing.close()

    def _remember(self, model: str, split: TrafficSplit | None) -> None:
        if split is None:
            self._splits.pop(model, None)
        else:
            self._splits[model] = split

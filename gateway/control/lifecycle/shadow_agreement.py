"""Live agreement of a shadow version with the version that answered, kept in Redis so
that every gateway process adds to the same figures and `promote` can judge on them.

Per (model, candidate, reference) pair, one hash tag so both keys share a cluster slot:
    gateway:shadow:{<tag>}:totals   measure, requests, rows, sum (agreed rows, or cosines)
    gateway:shadow:{<tag>}:lowest   the LOWEST smallest cosines (sorted set): the worst
                                    and the 1st percentile, exact up to 100 x LOWEST rows
    gateway:shadow-refs:<model>:<candidate>   the references it was compared against
Each process adds rows in memory and writes them every FLUSH_S (and before a promotion
reads them). Figures expire TTL_S after the last write.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from gateway.runtime.repeating import Repeating
from resilience import CircuitBreaker, StoreUnavailable

PREFIX = "gateway:shadow:"
REFERENCES = "gateway:shadow-refs:"
LOWEST = 1000
FLUSH_S = 1.0
TTL_S = 7 * 24 * 3600
AGREEMENT, COSINE = "agreement", "cosine"


@dataclass(frozen=True)
class LiveAgreement:
    """What the mirrored requests showed: `mean` is the share of agreeing rows (labels) or
    the mean cosine (embeddings); `p1` and `worst` are cosines only."""

    measure: str
    requests: int
    rows: int
    mean: float
    p1: float | None = None
    worst: float | None = None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "measure": self.measure,
            "requests": self.requests,
            "rows": self.rows,
            "mean": round(self.mean, 6),
        }
        if self.measure == COSINE:
            described["p1"] = None if self.p1 is None else round(self.p1, 6)
            described["worst"] = None if self.worst is None else round(self.worst, 6)
        return described


@dataclass
class _Pending:
    measure: str
    requests: int = 0
    rows: int = 0
    total: float = 0.0
    lowest: list[float] = field(default_factory=list)  # a max-heap of negatives, <= LOWEST


class ShadowAgreement:
    """Rows compared by mirrored requests, summed across gateway processes."""

    def __init__(self, client: aioredis.Redis, breaker: CircuitBreaker) -> None:
        self._redis = client
        self._breaker = breaker
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        self._flushing = Repeating(
            "shadow-agreement", FLUSH_S, self.flush, "shadow agreement not written"
        )

    def add(
        self, model: str, candidate: str, reference: str, measure: str, values: list[float]
    ) -> None:
        """One mirrored request's rows: 1.0/0.0 per row (labels) or cosines."""
        pending = self._pending.setdefault((model, candidate, reference), _Pending(measure))
        pending.requests += 1
        pending.rows += len(values)
        pending.total += math.fsum(values)
        if measure == COSINE:
            for value in values:
                if len(pending.lowest) < LOWEST:
                    heapq.heappush(pending.lowest, -value)
                elif -pending.lowest[0] > value:
                    heapq.heapreplace(pending.lowest, -value)

    async def flush(self) -> None:
        """Write what this process added; kept for the next try while Redis is down."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            await self._breaker.call(lambda: self._write(pending))
        except StoreUnavailable:
            for pair, rows in pending.items():  # merged back; bounded by LOWEST per pair
                self._merge(pair, rows)
            raise

    async def read(self, model: str, candidate: str, reference: str) -> LiveAgreement | None:
        """The figures of `candidate` against `reference`, None before any mirrored row."""
        tag = _tag(model, candidate, reference)

        async def read() -> tuple[dict[str, str], list[Any]]:
            raw = await self._redis.hgetall(f"{PREFIX}{{{tag}}}:totals")
            totals = {_text(k): _text(v) for k, v in raw.items()}
            rank = min(max(math.ceil(int(totals.get("rows", 0)) / 100) - 1, 0), LOWEST - 1)
            lowest = await self._redis.zrange(f"{PREFIX}{{{tag}}}:lowest", 0, rank, withscores=True)
            return totals, lowest

        totals, lowest = await self._breaker.call(read)
        if not int(totals.get("rows", 0)):
            return None
        rows = int(totals["rows"])
        measure = totals["measure"]
        scores = [float(score) for _, score in lowest]
        return LiveAgreement(
            measure,
            int(totals["requests"]),
            rows,
            float(totals["sum"]) / rows,
            scores[-1] if measure == COSINE and scores else None,
            scores[0] if measure == COSINE and scores else None,
        )

    async def references(self, model: str, candidate: str) -> list[str]:
        members = await self._breaker.call(
            lambda: self._redis.smembers(f"{REFERENCES}{model}:{candidate}")
        )
        return sorted(_text(m) for m in members)

    def start(self) -> None:
        self._flushing.start()

    async def close(self) -> None:
        await self._flushing.close()
        with contextlib.suppress(StoreUnavailable):
            await self.flush()

    async def _write(self, pending: dict[tuple[str, str, str], _Pending]) -> None:
        # Not a transaction: the references set may live on another cluster node.
        async with self._redis.pipeline(transaction=False) as pipe:
            for (model, candidate, reference), rows in pending.items():
                tag = _tag(model, candidate, reference)
                totals, lowest = f"{PREFIX}{{{tag}}}:totals", f"{PREFIX}{{{tag}}}:lowest"
                pipe.hset(totals, mapping={"model": model, "measure": rows.measure})
                pipe.hincrby(totals, "requests", rows.requests)
                pipe.hincrby(totals, "rows", rows.rows)
                pipe.hincrbyfloat(totals, "sum", rows.total)
                pipe.expire(totals, TTL_S)
                if rows.lowest:
                    stamp = secrets.token_hex(4)
                    members = {f"{stamp}:{i}": -v for i, v in enumerate(rows.lowest)}
                    pipe.zadd(lowest, members)
                    pipe.zremrangebyrank(lowest, LOWEST, -1)
                    pipe.expire(lowest, TTL_S)
                pipe.sadd(f"{REFERENCES}{model}:{candidate}", reference)
                pipe.expire(f"{REFERENCES}{model}:{candidate}", TTL_S)
            await pipe.execute()

    def _merge(self, pair: tuple[str, str, str], rows: _Pending) -> None:
        current = self._pending.setdefault(pair, _Pending(rows.measure))
        current.requests += rows.requests
        current.rows += rows.rows
        current.total += rows.total
        current.lowest = heapq.nlargest(LOWEST, current.lowest + rows.lowest)  # negatives
        heapq.heapify(current.lowest)


def _tag(model: str, candidate: str, reference: str) -> str:
    return hashlib.blake2b(f"{model}\0{candidate}\0{reference}".encode(), digest_size=8).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

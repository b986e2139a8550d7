"""`PopularRequests`: the requests a model version is asked most often, recently, in this
process; what a cache warm-up replays for the version that takes over its traffic.

    seen(model, version, memo_key, tenant, request)   one more request (the decoded
                                                       request kept the first time it is
                                                       given: a hit from the response memo
                                                       is counted without decoding)
    top(model, version, n)                             the most frequent, most frequent
                                                       first, as (tenant, request)

Counts are approximate and bounded: at most `capacity` requests per version are counted;
when a version's table is full, the less frequent half is dropped and every count halved,
so the table follows what is asked now (lossy counting with decay). Counting costs a dict
lookup per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.protocol.types import InferRequest


@dataclass(slots=True)
class _Counted:
    count: int
    tenant: str
    request: InferRequest | None


class PopularRequests:
    """Approximate top requests per model version."""

    def __init__(self, capacity: int = 1000) -> None:
        self._capacity = max(2, capacity)
        self._versions: dict[tuple[str, str], dict[bytes, _Counted]] = {}

    def seen(
        self, model: str, version: str, memo_key: bytes, tenant: str, request: InferRequest | None
    ) -> None:
        table = self._versions.get((model, version))
        if table is None:
            table = self._versions[(model, version)] = {}
        counted = table.get(memo_key)
        if counted is not None:
            counted.count += 1
            if counted.request is None:
                counted.request = request
            return
        if len(table) >= self._capacity:
            _halve(table)
        table[memo_key] = _Counted(1, tenant, request)

    def top(self, model: str, version: str, n: int) -> list[tuple[str, InferRequest]]:
        table = self._versions.get((model, version), {})
        ranked = sorted(table.values(), key=lambda c: c.count, reverse=True)
        return [(c.tenant, c.request) for c in ranked if c.request is not None][:n]

    def forget(self, model: str) -> None:
        """Drop the counts of every version of `model` (it was purged or reloaded)."""
        for key in [key for key in self._versions if key[0] == model]:
            del self._versions[key]


def _halve(table: dict[bytes, _Counted]) -> None:
    """Keep the more frequent half, their counts halved (old popularity fades)."""
    ranked = sorted(table.items(), key=lambda item: item[1].count, reverse=True)
    table.clear()
    for key, counted in ranked[: len(ranked) // 2]:
        counted.count = max(1, counted.count // 2)
        table[key] = counted

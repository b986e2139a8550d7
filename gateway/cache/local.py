"""The in-process tier: a small LRU, bounded in bytes, with a short TTL.

It holds values already verified (results, or whole encoded responses), so a hit here is a
dict lookup. Its bound is in bytes of memory: each entry counts the size its owner gives
(what the value really costs, `gateway.cache.result_cache`) plus `ENTRY_OVERHEAD_BYTES` for
its key and bookkeeping, so the bound holds for process memory, not just for payloads
(`tests/unit/cache/test_memory.py` measures it). Its TTL is short
(GATEWAY_CACHE_LOCAL_TTL_S, never longer than the model's) because other processes cannot
reach into it: a purge elsewhere reaches it through Redis pub/sub, or at worst after that
TTL.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

# The dict slot, the _Entry and the key (a 32-byte digest) of one entry, measured with
# tracemalloc on CPython 3.11 (about 300 bytes), rounded up.
ENTRY_OVERHEAD_BYTES = 384


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    size: int
    expires_at: float
    model: str
    version: str


class LocalTier(Generic[V]):
    """LRU over values of model versions; evicts the least recently used beyond `max_bytes`."""

    def __init__(
        self, max_bytes: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[bytes, _Entry[V]] = OrderedDict()
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._clock = clock
        self.size = 0

    def get(self, key: bytes) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: bytes, value: V, size: int, ttl_s: float, model: str, version: str) -> None:
        size += ENTRY_OVERHEAD_BYTES
        if size > self._max_bytes:
            return
        self._remove(key)
        expires_at = self._clock() + min(ttl_s, self._ttl_s)
        self._entries[key] = _Entry(value, size, expires_at, model, version)
        self.size += size
        while self.size > self._max_bytes:
            self._remove(next(iter(self._entries)))

    def purge(self, model: str | None = None, version: str | None = None) -> int:
        """Drop entries of `model` (and `version`), or everything when `model` is None."""
        doomed = [
            key
            for key, entry in self._entries.items()
            if model is None
            or (entry.model == model and (version is None or entry.version == version))
        ]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)

    def _remove(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry.size

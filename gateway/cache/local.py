"""The in-process tier: a small LRU of verified results, bounded in bytes, short TTL.

It holds results already verified, so a hit here costs a dict lookup. Its TTL is short
(GATEWAY_CACHE_LOCAL_TTL_S, and never longer than the model's) because other processes
cannot reach into it: a purge elsewhere reaches it through Redis pub/sub, or at worst
after that TTL.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.protocol.types import InferResult


@dataclass(frozen=True, slots=True)
class _Entry:
    result: InferResult
    size: int
    expires_at: float


class LocalTier:
    """LRU over result entries; evicts the least recently used beyond `max_bytes`."""

    def __init__(
        self, max_bytes: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._clock = clock
        self.size = 0

    def get(self, key: bytes) -> InferResult | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.result

    def put(self, key: bytes, result: InferResult, size: int, ttl_s: float) -> None:
        if size > self._max_bytes:
            return
        self._remove(key)
        expires_at = self._clock() + min(ttl_s, self._ttl_s)
        self._entries[key] = _Entry(result, size, expires_at)
        self.size += size
        while self.size > self._max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)

    def purge(self, model: str | None = None, version: str | None = None) -> int:
        """Drop entries of `model` (and `version`), or everything when `model` is None."""
        doomed = [
            key
            for key, entry in self._entries.items()
            if model is None
            or (
                entry.result.model == model and (version is None or entry.result.version == version)
            )
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

"""How many inference requests one worker serves at once: in all, and for one API key.

    Capacity(limit, per_key)
      full                    the worker-wide limit (GATEWAY_MAX_IN_FLIGHT) is reached:
                              new requests are shed with 503 before any work, and readiness
                              says 503 so a load balancer sends work elsewhere
      hold()                  one request in flight (the worker-wide count)
      hold_for_key(key_id)    the same request counted against its key; over
                              GATEWAY_MAX_IN_FLIGHT_PER_KEY it is refused with 429, so one
                              key (slow bodies, a flood) cannot take the whole worker and the
                              key over its share is the one turned away

Counts are per worker process; asyncio runs one request at a time between awaits, so plain
integers suffice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gateway.errors import ServiceUnavailable, TooManyRequests


class Overloaded(ServiceUnavailable):
    """This worker already serves GATEWAY_MAX_IN_FLIGHT requests."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the gateway is at capacity; retry shortly", max(1, retry_after_s))


class KeyAtCapacity(TooManyRequests):
    """This key already has GATEWAY_MAX_IN_FLIGHT_PER_KEY requests in progress here."""

    def __init__(self, per_key: int, retry_after_s: int) -> None:
        super().__init__(
            f"this API key already has {per_key} inference requests in progress on this "
            "gateway worker (the limit per key); retry when some have finished",
            {"Retry-After": str(max(1, retry_after_s))},
        )


class Capacity:
    """In-flight inference requests of one worker, bounded in all and per key (0: no bound)."""

    def __init__(self, limit: int, per_key: int, retry_after_s: int) -> None:
        self.limit = limit
        self.per_key = per_key
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self._by_key: dict[str, int] = {}

    @property
    def full(self) -> bool:
        return bool(self.limit) and self.in_flight >= self.limit

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self.full:
            raise Overloaded(self.retry_after_s)
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    @contextmanager
    def hold_for_key(self, key_id: str) -> Iterator[None]:
        held = self._by_key.get(key_id, 0)
        if self.per_key and held >= self.per_key:
            raise KeyAtCapacity(self.per_key, self.retry_after_s)
        self._by_key[key_id] = held + 1
        try:
            yield
        finally:
            left = self._by_key[key_id] - 1
            if left:
                self._by_key[key_id] = left
            else:
                del self._by_key[key_id]  # no entry per key ever seen: bounded memory

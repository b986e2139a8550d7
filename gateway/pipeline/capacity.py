"""How many inference requests one worker serves at once: in all, and for one API key.

    Capacity(limit, per_key)
      full                    the worker-wide limit (GATEWAY_MAX_IN_FLIGHT) is reached:
                              new requests are shed with 503 before any work, and readiness
                              says 503 so a load balancer sends work elsewhere
      hold()                  one request in flight (the worker-wide count)
      hold_for_key(key_id)    the same request counted against its key, once the key is
                              known; past the key's share it is refused with 429, so the key
                              over its share is the one turned away. The share is
                              GATEWAY_MAX_IN_FLIGHT_PER_KEY, and never more than half of what
                              the other keys' requests leave free:
                                  share = min(per_key, max(1, (limit - others) // 2))
                              One key flooding (slow bodies, a burst) holds at most half the
                              worker; two hold a third each, n keys 1/(n+1) each: the worker
                              always keeps room for a key that is not flooding it (before,
                              two keys at their fixed share of 32 of 64 held every slot)

Counts are per worker process; asyncio runs one request at a time between awaits, so plain
integers suffice. The holds are small classes rather than generator-based context managers:
every inference request takes two, and a generator's setup showed in cache hits' profiles.
"""

from __future__ import annotations

from types import TracebackType

from gateway.errors import ServiceUnavailable, TooManyRequests


class Overloaded(ServiceUnavailable):
    """This worker already serves GATEWAY_MAX_IN_FLIGHT requests."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the gateway is at capacity; retry shortly", max(1, retry_after_s))


class KeyAtCapacity(TooManyRequests):
    """This key already has its share of the worker's requests in progress here."""

    def __init__(self, share: int, retry_after_s: int) -> None:
        super().__init__(
            f"this API key already has {share} inference requests in progress on this "
            "gateway worker (its share now); retry when some have finished",
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

    def hold(self) -> _Hold:
        """One request in flight while the block runs; `Overloaded` if the worker is full."""
        return _Hold(self, None)

    def hold_for_key(self, key_id: str) -> _Hold:
        """One request of `key_id` in flight while the block runs; `KeyAtCapacity` if the
        key already has its share."""
        return _Hold(self, key_id)

    def _take(self, key_id: str | None) -> None:
        if key_id is None:
            if self.full:
                raise Overloaded(self.retry_after_s)
            self.in_flight += 1
            return
        held = self._by_key.get(key_id, 0)
        if self.per_key and held >= self.share(held):
            raise KeyAtCapacity(self.share(held), self.retry_after_s)
        self._by_key[key_id] = held + 1

    def share(self, held: int) -> int:
        """How many requests a key holding `held` may have in flight now."""
        if not self.limit:
            return self.per_key
        # The worker-wide count includes this request (held before the key was known).
        others = max(0, self.in_flight - 1 - held)
        return min(self.per_key, max(1, (self.limit - others) // 2))

    def _release(self, key_id: str | None) -> None:
        if key_id is None:
            self.in_flight -= 1
            return
        left = self._by_key[key_id] - 1
        if left:
            self._by_key[key_id] = left
        else:
            del self._by_key[key_id]  # no entry per key ever seen: bounded memory


class _Hold:
    """A hold on the worker's capacity (`key_id` None) or on a key's share of it."""

    __slots__ = ("_capacity", "_key_id")

    def __init__(self, capacity: Capacity, key_id: str | None) -> None:
        self._capacity = capacity
        self._key_id = key_id

    def __enter__(self) -> None:
        self._capacity._take(self._key_id)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._capacity._release(self._key_id)

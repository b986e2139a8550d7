"""How many inference requests one worker serves at once: in all, and for one API key.

    Capacity(limit, per_key)
      full                    the worker-wide limit (GATEWAY_MAX_IN_FLIGHT) is reached
                              (readiness stays 200: `Services.unready_reason` says why)
      hold(key_id)            one request of `key_id` in flight, taken once the key is
                              authenticated, before the body is read:
                              past the key's share: 429 (the key over its share is the one
                                turned away, whether or not the worker is full)
                              else past the worker-wide limit: 503 + Retry-After (shed)
                              The share is GATEWAY_MAX_IN_FLIGHT_PER_KEY, and never more
                              than half of what the other keys' requests leave free:
                                  share = min(per_key, max(1, (limit - others) // 2))
                              One key flooding (slow bodies, a burst) holds at most half
                              the worker; two hold a third each, n keys 1/(n+1) each, so
                              the worker keeps room for a key that is not flooding it.
                              (Before, the worker-wide slot was taken before the key was
                              known: one key's burst filled all 64 slots while it was
                              being authenticated, and two keys at a fixed share of 32
                              held every slot.)
      hold(None)              a request of no key (not counted against any share)

Counts are per worker process; asyncio runs one request at a time between awaits, so plain
integers suffice. The hold is a small class rather than a generator-based context manager:
every inference request takes one, and a generator's setup showed in cache hits' profiles.
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

    def hold(self, key_id: str | None) -> _Hold:
        """One request of `key_id` in flight while the block runs: `KeyAtCapacity` past
        the key's share, `Overloaded` when the worker is full."""
        return _Hold(self, key_id)

    def share(self, held: int) -> int:
        """How many requests a key holding `held` may have in flight now."""
        if not self.limit:
            return self.per_key
        others = max(0, self.in_flight - held)
        return min(self.per_key, max(1, (self.limit - others) // 2))

    def _take(self, key_id: str | None) -> None:
        held = self._by_key.get(key_id, 0) if key_id is not None else 0
        if key_id is not None and self.per_key:
            share = self.share(held)
            if held >= share:
                raise KeyAtCapacity(share, self.retry_after_s)
        if self.full:
            raise Overloaded(self.retry_after_s)
        self.in_flight += 1
        if key_id is not None:
            self._by_key[key_id] = held + 1

    def _release(self, key_id: str | None) -> None:
        self.in_flight -= 1
        if key_id is None:
            return
        left = self._by_key[key_id] - 1
        if left:
            self._by_key[key_id] = left
        else:
            del self._by_key[key_id]  # no entry per key ever seen: bounded memory


class _Hold:
    """A hold on the worker's capacity, counted in `key_id`'s share (if any)."""

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

"""Per-key rate limits: GCRA (generic cell rate algorithm), atomic in Redis, one round trip.

A key allows `rate` requests per second with bursts of up to `burst`. GCRA keeps one
number per key, the theoretical arrival time (TAT) of the next request: a request at time
`now` is allowed when `max(TAT, now) + interval - burst * interval <= now`, and then moves
the TAT one interval on. The Lua script does that read-check-write atomically with
Redis's own clock, so every gateway process shares one limit per key.

When Redis is down (or its circuit breaker is open) the same algorithm runs in-process
(`LocalRateLimiter`): each process then enforces the limit on its own, so N workers admit
up to N times the rate until Redis is back. That is the documented degraded mode.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from auth.records import KeyRecord
from resilience import StoreUnavailable
from resilience.breaker import CircuitBreaker

PREFIX = "gateway:ratelimit:"

# KEYS[1]: the key's TAT; ARGV[1]: interval (µs); ARGV[2]: burst.
# Returns {allowed (0/1), remaining, retry_after_us, reset_after_us}.
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local tolerance = interval * burst
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The verdict on one request, with what the RateLimit-* headers report."""

    allowed: bool
    limit: int  # the burst: how many requests may come at once
    remaining: int
    retry_after_s: float  # 0 when allowed
    reset_after_s: float  # until the full burst is available again

    def headers(self) -> dict[str, str]:
        values = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_after_s)),
        }
        if not self.allowed:
            values["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return values


def _interval_us(rate_per_second: float) -> int:
    return max(1, round(1_000_000 / rate_per_second))


class LocalRateLimiter:
    """GCRA in this process: the fallback while Redis is unavailable."""

    def __init__(
        self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._tats: OrderedDict[str, float] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def check(self, key_id: str, rate_per_second: float, burst: int) -> RateDecision:
        interval = _interval_us(rate_per_second) / 1_000_000
        now = self._clock()
        tat = max(self._tats.get(key_id, now), now)
        new_tat = tat + interval
        allow_at = new_tat - interval * burst
        if allow_at > now:
            return RateDecision(False, burst, 0, allow_at - now, tat - now)
        self._tats[key_id] = new_tat
        self._tats.move_to_end(key_id)
        if len(self._tats) > self._max_keys:
            self._tats.popitem(last=False)
        return RateDecision(
            True, burst, math.floor((now - allow_at) / interval), 0.0, new_tat - now
        )


class RateLimiter:
    """Checks a key's limit in Redis, falling back to the in-process limiter."""

    def __init__(
        self, client: aioredis.Redis, breaker: CircuitBreaker, local: LocalRateLimiter | None = None
    ) -> None:
        self._script = client.register_script(GCRA_LUA)
        self._breaker = breaker
        self._local = local or LocalRateLimiter()

    async def check(self, record: KeyRecord) -> RateDecision | None:
        """The decision for one request of `record`; None when the key is unlimited."""
        if record.rate_limit_per_second <= 0:
            return None
        interval = _interval_us(record.rate_limit_per_second)
        try:
            allowed, remaining, retry_us, reset_us = await self._breaker.call(
                lambda: self._script(keys=[PREFIX + record.id], args=[interval, record.burst])
            )
        except StoreUnavailable:
            return self._local.check(record.id, record.rate_limit_per_second, record.burst)
        return RateDecision(
            bool(allowed), record.burst, int(remaining), retry_us / 1e6, reset_us / 1e6
        )

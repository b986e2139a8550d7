"""Redis clients for the gateway: short timeouts, no retries.

A call that fails must fail fast: the caller has a defined fallback (remembered keys, the
in-process rate limiter, a cache miss), and a circuit breaker stops further calls while
Redis stays down. redis-py's default of retrying with backoff would instead multiply the
wait on every request.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# Delete KEYS[1] only if it still holds ARGV[1]: releasing a lock only while it is ours.
RELEASE_IF_OWNED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def redis_client(url: str, timeout_s: float) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )

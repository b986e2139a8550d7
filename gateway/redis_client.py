"""Redis clients for the gateway: short timeouts, no retry past a deadline.

A call that fails must fail fast: the caller has a defined fallback (remembered keys, the
in-process rate limiter, a cache miss), and a circuit breaker stops further calls while
Redis stays down. redis-py's default of retrying with backoff would instead multiply the
wait on every request. The one retry kept is on a connection error, at once, on a new
connection: after Redis restarts, each pooled connection fails on its first use, and that
retry costs a reconnect (or, while Redis is down, one more refused connect), never a
second deadline.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

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
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        retry_on_timeout=False,
        health_check_interval=0,
    )

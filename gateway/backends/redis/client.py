"""Redis clients for the gateway: short timeouts, no retry past a deadline; one Redis, a
Redis Cluster or a Sentinel-watched primary.

    redis://[user:password@]host[:port][/db]    one Redis (rediss:// with TLS, unix:///path)
    redis+cluster://[user:password@]host:port[,host:port...]
                                                 a Redis Cluster, from any of its nodes
    redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]
                                                 the primary the Sentinels name `service`;
                                                 after a failover, the new one

A call that fails must fail fast: the caller has a defined fallback (remembered keys, the
in-process rate limiter, a cache miss), and a circuit breaker stops further calls while
Redis stays down. redis-py's default of retrying with backoff would instead multiply the
wait on every request. The one retry kept is on a connection error, at once, on a new
connection: after Redis restarts, each pooled connection fails on its first use, and that
retry costs a reconnect (or, while Redis is down, one more refused connect), never a
second deadline.

Everything the gateway keeps in Redis works on a cluster: each script and transaction
touches keys of one hash slot (`gateway.cache.redis_tier`, `auth.store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"

# Delete KEYS[1] only if it still holds ARGV[1]: releasing a lock only while it is ours.
RELEASE_IF_OWNED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class NodesUrl:
    """A redis+cluster:// or redis+sentinel:// URL, taken apart."""

    scheme: str
    nodes: list[tuple[str, int]]
    username: str | None
    password: str | None
    service: str | None  # sentinel: the primary's name
    db: int

    @classmethod
    def parse(cls, url: str) -> NodesUrl:
        parts = urlsplit(url)
        credentials, _, hosts = parts.netloc.rpartition("@")
        username, _, password = credentials.partition(":")
        nodes = []
        for node in hosts.split(","):
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{node!r} is not host:port")
            nodes.append((host.strip("[]"), int(port)))
        path = [part for part in parts.path.split("/") if part]
        service = None
        if parts.scheme == SENTINEL_SCHEME:
            if not path:
                raise ValueError("a Sentinel URL names the primary: .../service[/db]")
            service, path = path[0], path[1:]
        if len(path) > 1 or (path and not path[0].isdigit()):
            raise ValueError(f"{parts.path!r} is not /db")
        if parts.scheme == CLUSTER_SCHEME and path and path[0] != "0":
            raise ValueError("a Redis Cluster has only database 0")
        return cls(
            parts.scheme,
            nodes,
            unquote(username) or None,
            unquote(password) or None,
            service,
            int(path[0]) if path else 0,
        )


def check_redis_url(url: str) -> None:
    """ValueError naming what is wrong with `url`."""
    scheme = urlsplit(url).scheme
    if scheme in (CLUSTER_SCHEME, SENTINEL_SCHEME):
        NodesUrl.parse(url)
        return
    aioredis.connection.parse_url(url)
    if not urlsplit(url).hostname and not url.startswith("unix://"):
        raise ValueError("it names no host: redis://host[:port][/db]")


async def subscribed(client: aioredis.Redis, channel: str) -> PubSub:
    """A subscription to `channel` (on a cluster, any node hears every PUBLISH; the client
    must know the cluster's slots before it can pick one)."""
    if isinstance(client, RedisCluster):
        await client.initialize()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    return pubsub


def redis_client(url: str, timeout_s: float) -> aioredis.Redis:
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    scheme = urlsplit(url).scheme
    if scheme == CLUSTER_SCHEME:
        parsed = NodesUrl.parse(url)
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
            username=parsed.username,
            password=parsed.password,
            # A primary that is down fails the calls for its slots, not all the others.
            require_full_coverage=False,
            **options,
        )
        # The commands the gateway uses are the same on a cluster client.
        return cast(aioredis.Redis, cluster)
    if scheme == SENTINEL_SCHEME:
        parsed = NodesUrl.parse(url)
        # Untyped before redis-py 8.2, typed since: the ignore holds on either.
        sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            parsed.nodes,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            sentinel_kwargs={"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s},
        )
        primary: aioredis.Redis = sentinel.master_for(
            parsed.service or "",  # NodesUrl.parse refuses a Sentinel URL without one
            username=parsed.username,
            password=parsed.password,
            db=parsed.db,
            health_check_interval=0,
            **options,
        )
        return primary
    return aioredis.Redis.from_url(url, retry_on_timeout=False, health_check_interval=0, **options)

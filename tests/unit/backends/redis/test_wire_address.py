"""Which Redis clients get the gateway's own connection for script calls, and with what."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from gateway.backends.redis.client import redis_client
from gateway.backends.redis.wire import WireAddress


def test_a_plain_url_gives_host_port_login_and_database() -> None:
    address = WireAddress.of(redis_client("redis://user:secret@redis.internal:6380/4", 0.25))
    assert address == WireAddress(
        host="redis.internal",
        port=6380,
        path=None,
        username="user",
        password="secret",
        db=4,
        timeout_s=0.25,
        connect_timeout_s=0.25,
    )
    assert "secret" not in repr(address)


def test_a_unix_socket_url_gives_its_path() -> None:
    address = WireAddress.of(redis_client("unix:///run/redis.sock?db=2", 0.5))
    assert address is not None
    assert (address.path, address.db, address.password) == ("/run/redis.sock", 2, None)


@pytest.mark.parametrize(
    "url",
    [
        "rediss://redis.internal:6380/0",  # TLS
        "redis+sentinel://127.0.0.1:26379/primary",  # the primary moves
        "redis+cluster://127.0.0.1:7000",  # several nodes
    ],
)
def test_other_clients_keep_redis_pys_connections(url: str) -> None:
    assert WireAddress.of(redis_client(url, 0.5)) is None


def test_a_client_on_another_kind_of_pool_keeps_its_own() -> None:
    pool = aioredis.BlockingConnectionPool.from_url("redis://127.0.0.1:6379/0")
    assert WireAddress.of(aioredis.Redis.from_pool(pool)) is None
    assert WireAddress.of(object()) is None

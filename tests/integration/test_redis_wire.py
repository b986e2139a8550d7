"""The gateway's own Redis connection (`gateway.backends.redis.wire`) against a real redis-server:
AUTH and SELECT from the URL, a unix socket, a refused or wrong login failing its calls at
once, a Redis killed and restarted (the calls in flight fail, the next ones reconnect), and
nothing left open after `close()`. Batching, error replies, NOSCRIPT and a hung Redis are in
test_redis_pipelining.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.exceptions

from devstack import EmbeddedRedis
from devstack.ports import free_port
from gateway.backends.redis.client import redis_client
from gateway.backends.redis.wire import RedisWire, WireAddress
from tests.support import own_backends
from tests.support.polling import eventually

TIMEOUT_S = 1.0
PASSWORD = "wire-test-password"


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with own_backends.own_redis(tmp_path_factory, "wire-redis") as server:
        yield server


def wire_for(url: str) -> RedisWire:
    address = WireAddress.of(redis_client(url, TIMEOUT_S))
    assert address is not None, url
    return RedisWire(address)


def admin(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port)


def connected_clients(server: EmbeddedRedis) -> int:
    """Clients connected to `server`, not counting the one asking."""
    with redis.Redis(host=server.host, port=server.port) as client:
        return len(client.client_list()) - 1


def test_a_password_and_database_from_the_url(own_redis: EmbeddedRedis) -> None:
    with admin(own_redis) as client:
        client.acl_setuser("gateway", enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
                           commands=["+@all"])  # fmt: skip
        client.config_set("requirepass", PASSWORD)
    url = f"redis://gateway:{PASSWORD}@{own_redis.host}:{own_redis.port}/3"

    async def scenario() -> None:
        wire = wire_for(url)
        try:
            assert await wire.call("SET", "wire-key", "in db 3") is not None
            assert await wire.call("GET", "wire-key") == b"in db 3"
            assert await wire.call("ACL", "WHOAMI") == b"gateway"
        finally:
            wire.close()

    asyncio.run(scenario())
    db3 = redis.Redis(host=own_redis.host, port=own_redis.port, db=3, password=PASSWORD)
    db0 = redis.Redis(host=own_redis.host, port=own_redis.port, db=0, password=PASSWORD)
    with db3, db0:
        assert db3.get("wire-key") == b"in db 3"
        assert db0.get("wire-key") is None


def test_a_wrong_password_fails_the_calls_without_naming_it(own_redis: EmbeddedRedis) -> None:
    with admin(own_redis) as client:
        client.config_set("requirepass", PASSWORD)

    async def scenario() -> None:
        wire = wire_for(f"redis://:not-the-password@{own_redis.host}:{own_redis.port}/0")
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(
                    wire.call("GET", "a"), wire.call("GET", "b"), return_exceptions=True
                ),
                timeout=5 * TIMEOUT_S,
            )
            for answer in answers:
                assert isinstance(answer, redis.exceptions.ConnectionError), answer
                assert "not-the-password" not in str(answer)
        finally:
            wire.close()

    asyncio.run(scenario())


def test_nothing_listening_fails_the_calls_at_once() -> None:
    port = free_port("127.0.0.1")

    async def scenario() -> None:
        wire = wire_for(f"redis://127.0.0.1:{port}/0")
        try:
            with pytest.raises(redis.exceptions.ConnectionError, match=f"127.0.0.1:{port}"):
                await asyncio.wait_for(wire.call("PING"), timeout=5 * TIMEOUT_S)
        finally:
            wire.close()

    asyncio.run(scenario())


def test_a_unix_socket(tmp_path_factory: pytest.TempPathFactory) -> None:
    state = tmp_path_factory.mktemp("wire-unix")
    socket_dir = Path(tempfile.mkdtemp(prefix="gw-"))  # a short path: sun_path's limit
    socket_path = socket_dir / "redis.sock"
    server = EmbeddedRedis(state, persistent=False, extra_args=["--unixsocket", str(socket_path)])
    server.start()
    try:

        async def scenario() -> None:
            wire = wire_for(f"unix://{socket_path}?db=1")
            try:
                assert await wire.call("SET", "over-unix", "yes") is not None
                assert await wire.call("GET", "over-unix") == b"yes"
            finally:
                wire.close()

        asyncio.run(scenario())
        with redis.Redis(host=server.host, port=server.port, db=1) as client:
            assert client.get("over-unix") == b"yes"
    finally:
        server.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


def test_a_killed_redis_fails_the_calls_in_flight_and_the_next_ones_reconnect(
    own_redis: EmbeddedRedis,
) -> None:
    async def scenario() -> None:
        wire = wire_for(own_redis.url)
        try:
            assert await wire.call("SET", "k", "before") is not None
            assert own_redis.pid is not None
            os.kill(own_redis.pid, signal.SIGSTOP)  # holds the call below in flight
            in_flight = wire.call("GET", "k")
            await asyncio.sleep(0)  # the turn's write goes out
            await asyncio.to_thread(own_redis.restart)  # SIGKILL, then a new redis-server
            with pytest.raises(redis.exceptions.RedisError):
                await asyncio.wait_for(in_flight, timeout=5 * TIMEOUT_S)
            assert await wire.call("SET", "k", "after") is not None  # a new connection
            assert await wire.call("GET", "k") == b"after"
        finally:
            wire.close()

    asyncio.run(scenario())


def test_close_leaves_no_connection_open(own_redis: EmbeddedRedis) -> None:
    before = connected_clients(own_redis)

    async def scenario() -> None:
        wire = wire_for(own_redis.url)
        assert await wire.call("PING") == b"PONG"
        assert connected_clients(own_redis) == before + 1
        wire.close()
        queued = wire.call("PING")  # a wire closed is one not connected yet: it connects
        assert await queued == b"PONG"
        wire.close()

    asyncio.run(scenario())
    eventually(
        lambda: connected_clients(own_redis) == before,
        timeout_s=10,
        what="Redis sees the wire's connection closed",
    )

"""The gateway's Redis client against a real redis-server that restarts and hangs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis.exceptions

from devstack import EmbeddedRedis
from gateway.backends.redis.client import redis_client
from tests.support import own_backends

DEADLINE_S = 0.25


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with own_backends.own_redis(tmp_path_factory, "client-redis") as server:
        yield server


def test_a_restarted_redis_answers_the_first_call_on_a_pooled_connection(
    own_redis: EmbeddedRedis,
) -> None:
    async def scenario() -> None:
        client = redis_client(own_redis.url, DEADLINE_S)
        try:
            assert await client.set("k", "before")
            own_redis.restart()  # the pooled connection now points at a closed socket
            assert await client.set("k", "after")  # reconnects once, at once
            assert await client.get("k") == b"after"
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_hung_redis_fails_a_call_at_its_deadline_without_a_retry(
    own_redis: EmbeddedRedis,
) -> None:
    async def scenario() -> None:
        client = redis_client(own_redis.url, DEADLINE_S)
        try:
            assert await client.ping()
            assert own_redis.pid is not None
            os.kill(own_redis.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(redis.exceptions.TimeoutError):
                    await client.get("k")
                assert time.monotonic() - started < 2 * DEADLINE_S + 0.2  # one deadline
            finally:
                os.kill(own_redis.pid, signal.SIGCONT)
        finally:
            await client.aclose()

    asyncio.run(scenario())

"""Auto-pipelined script calls against a real redis-server: batched, each with its own
answer or error, surviving a script flush, and failing every caller of a hung batch. Each
test runs on both paths: the gateway's own connection (a plain client) and redis-py's
pipelines (a client on a pool of another kind, as with TLS or Sentinel)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.commands.core import AsyncScript

from devstack import EmbeddedRedis
from gateway.backends.redis.client import redis_client
from gateway.backends.redis.pipelining import ScriptCalls, script_calls
from gateway.backends.redis.wire import WireAddress
from tests.support import own_backends

# Echoes its argument under its key; an argument "fail" is an error reply for that call only.
ECHO = """
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
"""
DEADLINE_S = 0.5


@pytest.fixture(params=["own connection", "redis-py pipelines"])
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with own_backends.own_redis(tmp_path_factory, "pipelining-redis") as server:
        yield server


@dataclass
class EchoBatcher:
    """A client, the ECHO script registered on it, and its script calls."""

    client: aioredis.Redis
    script: AsyncScript
    batcher: ScriptCalls

    async def run(self, key: str, value: str) -> Any:
        return await self.batcher.run(self.script, [key], [value])


@asynccontextmanager
async def echo_batcher(server: EmbeddedRedis, path: str) -> AsyncIterator[EchoBatcher]:
    if path == "own connection":
        client = redis_client(server.url, DEADLINE_S)
    else:
        pool = aioredis.BlockingConnectionPool.from_url(
            server.url, socket_timeout=DEADLINE_S, retry=None
        )
        client = aioredis.Redis.from_pool(pool)  # closes the pool with the client
    batcher = script_calls(client)
    assert (path == "own connection") == (WireAddress.of(client) is not None)
    try:
        yield EchoBatcher(client, client.register_script(ECHO), batcher)
    finally:
        batcher.close()
        await client.aclose()


def test_calls_of_one_turn_share_a_pipeline_and_keep_their_own_answers(
    own_redis: EmbeddedRedis, path: str
) -> None:
    async def scenario() -> None:
        async with echo_batcher(own_redis, path) as echo:
            assert await echo.run("warm", "up") == b"up"  # alone: loads it
            batches = echo.batcher.batches
            answers = await asyncio.gather(*(echo.run(f"k{n}", f"v{n}") for n in range(30)))
            assert answers == [f"v{n}".encode() for n in range(30)]
            assert echo.batcher.batches == batches + 1  # one turn, one batch
            assert await echo.client.get("k7") == b"v7"

    asyncio.run(scenario())


def test_submitted_calls_join_the_turns_pipeline_without_a_task(
    own_redis: EmbeddedRedis, path: str
) -> None:
    async def scenario() -> None:
        async with echo_batcher(own_redis, path) as echo:
            assert await echo.run("warm", "up") == b"up"
            batches = echo.batcher.batches
            awaited_call = asyncio.ensure_future(echo.run("r", "1"))  # runs before the flush
            tasks = len(asyncio.all_tasks())
            submitted = [echo.batcher.submit(echo.script, [f"s{n}"], [f"v{n}"]) for n in range(5)]
            assert len(asyncio.all_tasks()) == tasks  # futures, not tasks
            awaited = await asyncio.gather(awaited_call, *submitted)
            assert awaited == [b"1", *(f"v{n}".encode() for n in range(5))]
            assert echo.batcher.batches == batches + 1  # submitted and awaited calls together

    asyncio.run(scenario())


def test_an_error_reply_fails_only_its_own_call(own_redis: EmbeddedRedis, path: str) -> None:
    async def scenario() -> None:
        async with echo_batcher(own_redis, path) as echo:
            answers = await asyncio.gather(
                echo.run("a", "1"),
                echo.run("b", "fail"),
                echo.run("c", "3"),
                return_exceptions=True,
            )
            assert answers[0] == b"1" and answers[2] == b"3"
            assert isinstance(answers[1], redis.exceptions.ResponseError)
            assert "asked to fail" in str(answers[1])

    asyncio.run(scenario())


def test_a_script_redis_forgot_is_loaded_again(own_redis: EmbeddedRedis, path: str) -> None:
    async def scenario() -> None:
        async with echo_batcher(own_redis, path) as echo:
            assert await echo.run("k", "first") == b"first"
            await echo.client.script_flush()  # e.g. Redis restarted without its scripts
            answers = await asyncio.gather(*(echo.run(f"k{n}", f"again{n}") for n in range(5)))
            assert answers == [f"again{n}".encode() for n in range(5)]
            await echo.client.script_flush()
            assert await echo.run("k", "alone") == b"alone"

    asyncio.run(scenario())


def test_a_hung_redis_fails_every_call_of_the_batch_at_the_deadline(
    own_redis: EmbeddedRedis, path: str
) -> None:
    async def scenario() -> None:
        async with echo_batcher(own_redis, path) as echo:
            assert await echo.run("k", "warm") == b"warm"
            assert own_redis.pid is not None
            os.kill(own_redis.pid, signal.SIGSTOP)
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                answers = await asyncio.gather(
                    *(echo.run(f"k{n}", "v") for n in range(4)),
                    return_exceptions=True,
                )
                assert all(isinstance(a, redis.exceptions.TimeoutError) for a in answers)
                assert loop.time() - started < 4 * DEADLINE_S  # one deadline, not one each
            finally:
                os.kill(own_redis.pid, signal.SIGCONT)
            assert await echo.run("k", "after") == b"after"

    asyncio.run(scenario())


def test_a_cancelled_caller_leaves_the_others_their_answers(
    own_redis: EmbeddedRedis, path: str
) -> None:
    async def scenario() -> None:
        async with echo_batcher(own_redis, path) as echo:
            first = asyncio.ensure_future(echo.run("a", "1"))
            second = asyncio.ensure_future(echo.run("b", "2"))
            await asyncio.sleep(0)  # both are queued in the same batch
            first.cancel()
            assert await second == b"2"
            with pytest.raises(asyncio.CancelledError):
                await first

    asyncio.run(scenario())

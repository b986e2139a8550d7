"""Auto-pipelined script calls against a real redis-server: batched, each with its own
answer or error, surviving a script flush, and failing every caller of a hung batch."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import redis.exceptions

from gateway.embedded import EmbeddedRedis
from gateway.redis_client import redis_client
from gateway.redis_pipelining import ScriptBatcher

# Echoes its argument under its key; an argument "fail" is an error reply for that call only.
ECHO = """
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
"""
DEADLINE_S = 0.5


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("pipelining-redis"), persistent=False)
    server.start()
    yield server
    server.stop()


def counted_pipelines(client: Any) -> list[int]:
    """Record how many pipelines `client` opens (one entry per pipeline)."""
    opened: list[int] = []
    original = client.pipeline

    def pipeline(**options: Any) -> Any:
        opened.append(1)
        return original(**options)

    client.pipeline = pipeline
    return opened


def test_calls_of_one_turn_share_a_pipeline_and_keep_their_own_answers(
    own_redis: EmbeddedRedis,
) -> None:
    async def scenario() -> None:
        client = redis_client(own_redis.url, DEADLINE_S)
        script = client.register_script(ECHO)
        batcher = ScriptBatcher(client)
        opened = counted_pipelines(client)
        try:
            assert await batcher.run(script, ["warm"], ["up"]) == b"up"  # alone: loads it
            answers = await asyncio.gather(
                *(batcher.run(script, [f"k{n}"], [f"v{n}"]) for n in range(30))
            )
            assert answers == [f"v{n}".encode() for n in range(30)]
            assert len(opened) == 1  # one turn, one pipeline
            assert await client.get("k7") == b"v7"
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_an_error_reply_fails_only_its_own_call(own_redis: EmbeddedRedis) -> None:
    async def scenario() -> None:
        client = redis_client(own_redis.url, DEADLINE_S)
        script = client.register_script(ECHO)
        batcher = ScriptBatcher(client)
        try:
            answers = await asyncio.gather(
                batcher.run(script, ["a"], ["1"]),
                batcher.run(script, ["b"], ["fail"]),
                batcher.run(script, ["c"], ["3"]),
                return_exceptions=True,
            )
            assert answers[0] == b"1" and answers[2] == b"3"
            assert isinstance(answers[1], redis.exceptions.ResponseError)
            assert "asked to fail" in str(answers[1])
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_script_redis_forgot_is_loaded_again(own_redis: EmbeddedRedis) -> None:
    async def scenario() -> None:
        client = redis_client(own_redis.url, DEADLINE_S)
        script = client.register_script(ECHO)
        batcher = ScriptBatcher(client)
        try:
            assert await batcher.run(script, ["k"], ["first"]) == b"first"
            await client.script_flush()  # e.g. Redis restarted without its scripts
            answers = await asyncio.gather(
                *(batcher.run(script, [f"k{n}"], [f"again{n}"]) for n in range(5))
            )
            assert answers == [f"again{n}".encode() for n in range(5)]
            await client.script_flush()
            assert await batcher.run(script, ["k"], ["alone"]) == b"alone"
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_hung_redis_fails_every_call_of_the_batch_at_the_deadline(
    own_redis: EmbeddedRedis,
) -> None:
    async def scenario() -> None:
        client = redis_client(own_redis.url, DEADLINE_S)
        script = client.register_script(ECHO)
        batcher = ScriptBatcher(client)
        try:
            assert await batcher.run(script, ["k"], ["warm"]) == b"warm"
            assert own_redis.pid is not None
            os.kill(own_redis.pid, signal.SIGSTOP)
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                answers = await asyncio.gather(
                    *(batcher.run(script, [f"k{n}"], ["v"]) for n in range(4)),
                    return_exceptions=True,
                )
                assert all(isinstance(a, redis.exceptions.TimeoutError) for a in answers)
                assert loop.time() - started < 4 * DEADLINE_S  # one deadline, not one each
            finally:
                os.kill(own_redis.pid, signal.SIGCONT)
            assert await batcher.run(script, ["k"], ["after"]) == b"after"
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_cancelled_caller_leaves_the_others_their_answers(own_redis: EmbeddedRedis) -> None:
    async def scenario() -> None:
        client = redis_client(own_redis.url, DEADLINE_S)
        script = client.register_script(ECHO)
        batcher = ScriptBatcher(client)
        try:
            first = asyncio.ensure_future(batcher.run(script, ["a"], ["1"]))
            second = asyncio.ensure_future(batcher.run(script, ["b"], ["2"]))
            await asyncio.sleep(0)  # both are queued in the same batch
            first.cancel()
            assert await second == b"2"
            with pytest.raises(asyncio.CancelledError):
                await first
        finally:
            await client.aclose()

    asyncio.run(scenario())

"""The circuit breaker: opens after repeated failures, fails fast, recovers by trial."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis

from resilience import CircuitBreaker, StoreFull, StoreUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def failing() -> int:
    raise redis.ConnectionError("refused")


async def working() -> int:
    return 7


def test_opens_after_threshold_fails_fast_and_closes_after_a_good_trial(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    changes: list[bool] = []
    breaker = CircuitBreaker(
        "redis", failure_threshold=3, reset_after_s=5, on_change=changes.append, clock=clock
    )
    calls = 0

    async def counted() -> int:
        nonlocal calls
        calls += 1
        return await failing()

    async def scenario() -> None:
        for _ in range(5):
            with pytest.raises(StoreUnavailable):
                await breaker.call(counted)
        assert calls == 3 and breaker.is_open  # the last two never reached Redis
        clock.now = 6
        with pytest.raises(StoreUnavailable):
            await breaker.call(counted)  # the trial fails: open again
        assert calls == 4 and breaker.is_open
        clock.now = 12
        assert await breaker.call(working) == 7
        assert not breaker.is_open

    with caplog.at_level(logging.INFO, logger="resilience.breaker"):
        asyncio.run(scenario())
    assert changes == [False, True]
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]  # once per change


def test_timeouts_count_as_failures_and_successes_reset_the_count() -> None:
    breaker = CircuitBreaker("redis", failure_threshold=2)

    async def slow() -> int:
        raise TimeoutError

    async def scenario() -> None:
        with pytest.raises(StoreUnavailable):
            await breaker.call(slow)
        await breaker.call(working)
        with pytest.raises(StoreUnavailable):
            await breaker.call(slow)
        assert not breaker.is_open

    asyncio.run(scenario())


def test_record_keeps_the_books_of_calls_nobody_awaits() -> None:
    clock = Clock()
    breaker = CircuitBreaker("redis", failure_threshold=2, reset_after_s=5, clock=clock)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def ended(outcome: BaseException | int | None) -> asyncio.Future[int]:
            answer: asyncio.Future[int] = loop.create_future()
            if outcome is None:
                answer.cancel()
            elif isinstance(outcome, BaseException):
                answer.set_exception(outcome)
            else:
                answer.set_result(outcome)
            return answer

        for _ in range(2):
            assert breaker.allow()
            breaker.record(ended(redis.ConnectionError("refused")))
        assert breaker.is_open  # two Redis failures in a row
        clock.now += 5
        assert breaker.allow()  # the trial
        breaker.record(ended(None))  # cancelled: neither, the trial slot is free again
        assert breaker.is_open and breaker.allow()
        breaker.record(ended(ValueError("a bug, not Redis")))  # not Redis's failure
        assert breaker.is_open and breaker.allow()
        breaker.record(ended(1))
        assert not breaker.is_open

    asyncio.run(scenario())


def test_a_full_redis_is_named_and_does_not_open_the_circuit() -> None:
    breaker = CircuitBreaker("key store", failure_threshold=1)

    async def full() -> int:
        raise redis.exceptions.OutOfMemoryError("OOM command not allowed")

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(StoreFull, match="key store: Redis is full"):
                await breaker.call(full)
        assert await breaker.call(working) == 7  # still closed: Redis answers

    asyncio.run(scenario())

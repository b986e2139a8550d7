"""Single-flight and fail-open, with Redis replaced by an in-memory tier (the boundary)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from gateway.cache import (
    CacheKey,
    CachePolicy,
    Directive,
    EntryCodec,
    LockSettings,
    Outcome,
    ResultCache,
    result_cache,
)
from gateway.errors import TritonUnavailable
from gateway.observability.metrics import Metrics
from gateway.protocol.types import InferResult, Tensor
from tests.support.memory_redis_tier import MemoryRedis

POLICY = CachePolicy(True, 60, 10_000)
KEY = CacheKey(bytes(32), "m", "1")
RESULT = InferResult("m", "1", (Tensor("y", "FP32", (1,), b"\x00\x00\x80?"),))


def make_cache(
    redis: MemoryRedis, metrics: Metrics | None = None, wait_s: float = 1.0
) -> ResultCache:
    return ResultCache(
        20_000,
        60,
        redis,  # type: ignore[arg-type]
        EntryCodec(b"k" * 32),
        metrics or Metrics(),
        LockSettings(ttl_s=5, wait_s=wait_s, poll_s=0.001),
    )


async def fetched(
    cache: ResultCache, compute: Callable[[], Awaitable[InferResult]]
) -> tuple[InferResult, Outcome]:
    """One fetch, then the background Redis write it started."""
    answer = await cache.get_or_compute(KEY, compute, POLICY)
    await cache.flush(1.0)
    return answer


class Counting:
    def __init__(self, delay: float = 0.05) -> None:
        self.calls = 0
        self.delay = delay

    async def __call__(self) -> InferResult:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return RESULT


def test_concurrent_identical_misses_make_one_call() -> None:
    compute = Counting()
    cache = make_cache(MemoryRedis())

    async def scenario() -> list[Outcome]:
        answers = await asyncio.gather(
            *(cache.get_or_compute(KEY, compute, POLICY) for _ in range(50))
        )
        await cache.flush(1.0)
        return [outcome for _, outcome in answers]

    outcomes = asyncio.run(scenario())
    assert compute.calls == 1
    assert outcomes.count(Outcome.MISS) == 1 and outcomes.count(Outcome.COALESCED) == 49
    assert cache.local(KEY) == RESULT


def test_another_process_waits_for_the_lock_holders_entry() -> None:
    redis = MemoryRedis()
    first, second = make_cache(redis), make_cache(redis)
    compute = Counting(delay=0.1)

    async def scenario() -> tuple[Outcome, Outcome]:
        (_, a), (_, b) = await asyncio.gather(
            first.get_or_compute(KEY, compute, POLICY),
            second.get_or_compute(KEY, compute, POLICY),
        )
        await first.flush(1.0)
        await second.flush(1.0)
        return a, b

    outcomes = asyncio.run(scenario())
    assert compute.calls == 1
    assert sorted(o.value for o in outcomes) == ["coalesced", "miss"]
    assert redis.locks == {}  # released with the store


def test_a_stuck_lock_holder_delays_others_only_for_the_wait() -> None:
    redis = MemoryRedis()
    redis.locks[KEY.digest] = "someone else"
    compute = Counting(delay=0)
    _, outcome = asyncio.run(fetched(make_cache(redis, wait_s=0.05), compute))
    assert outcome is Outcome.MISS and compute.calls == 1


def test_a_failed_lock_holder_releases_the_others_at_once() -> None:
    redis = MemoryRedis()
    redis.locks[KEY.digest] = "someone else"
    compute = Counting(delay=0)

    async def scenario() -> tuple[InferResult, Outcome]:
        async def holder_fails() -> None:
            await asyncio.sleep(0.02)
            del redis.locks[KEY.digest]  # released without an entry

        failing = asyncio.create_task(holder_fails())
        # wait_s is an hour: only the released lock can end the wait within the deadline.
        answer = await asyncio.wait_for(
            make_cache(redis, wait_s=3600).get_or_compute(KEY, compute, POLICY), timeout=30
        )
        await failing
        return answer

    _, outcome = asyncio.run(scenario())
    assert outcome is Outcome.MISS and compute.calls == 1


def test_redis_down_is_a_miss_and_the_request_goes_on() -> None:
    redis = MemoryRedis()
    redis.down = True
    metrics = Metrics()
    compute = Counting(delay=0)
    result, outcome = asyncio.run(fetched(make_cache(redis, metrics), compute))
    assert (result, outcome) == (RESULT, Outcome.MISS)
    errors = {
        s.labels["operation"]: s.value
        for s in metrics.cache_errors.collect()[0].samples
        if s.name.endswith("_total")
    }
    assert errors == {"get": 1, "set": 1}


def test_the_cache_can_answer_while_redis_works_or_it_holds_entries_itself() -> None:
    redis = MemoryRedis()
    cache = make_cache(redis)
    assert cache.can_answer
    redis.down = True
    assert not cache.can_answer  # Redis failing and nothing of its own: readiness says 503
    redis.down = False
    asyncio.run(fetched(cache, Counting(delay=0)))
    redis.down = True
    assert cache.can_answer  # its in-process tier answers this entry


def test_errors_are_shared_with_followers_and_never_stored() -> None:
    redis = MemoryRedis()
    cache = make_cache(redis)

    async def failing() -> InferResult:
        await asyncio.sleep(0.01)
        raise RuntimeError("triton said no")

    async def scenario() -> list[BaseException | tuple[InferResult, Outcome]]:
        return await asyncio.gather(
            *(cache.get_or_compute(KEY, failing, POLICY) for _ in range(3)), return_exceptions=True
        )

    answers = asyncio.run(scenario())
    assert all(isinstance(a, RuntimeError) for a in answers)
    assert redis.values == {} and cache.local(KEY) is None
    assert redis.locks == {}  # released although nothing was stored


def test_entries_over_the_size_limit_are_not_stored() -> None:
    redis = MemoryRedis()
    cache = make_cache(redis)

    async def scenario() -> None:
        cache.store(KEY, RESULT, CachePolicy(True, 60, 10))
        await cache.flush(1.0)

    asyncio.run(scenario())
    assert redis.values == {} and cache.local(KEY) is None


class SlowRedis(MemoryRedis):
    """Writes take `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def set(self, key: str, value: bytes, ttl_s: float, digest: bytes, token: str) -> None:
        await asyncio.sleep(self.delay)
        await super().set(key, value, ttl_s, digest, token)


def test_a_miss_is_answered_before_its_redis_write() -> None:
    redis = SlowRedis(delay=0.2)
    cache = make_cache(redis)

    async def scenario() -> None:
        started = time.monotonic()
        _, outcome = await cache.get_or_compute(KEY, Counting(delay=0), POLICY)
        assert outcome is Outcome.MISS and time.monotonic() - started < 0.1
        assert redis.values == {} and redis.locks != {}  # the write is under way
        assert cache.local(KEY) == RESULT  # this process has it already
        await cache.flush(1.0)
        assert KEY.redis_key in redis.values and redis.locks == {}

    asyncio.run(scenario())


def test_writes_beyond_the_pending_limit_stay_local_and_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(result_cache, "MAX_PENDING_WRITES", 2)
    redis = SlowRedis(delay=0.05)
    metrics = Metrics()
    cache = make_cache(redis, metrics)
    keys = [CacheKey(bytes([n]) * 32, "m", "1") for n in range(3)]

    async def scenario() -> None:
        for key in keys:
            cache.store(key, RESULT, POLICY)
        await cache.flush(1.0)

    asyncio.run(scenario())
    assert sorted(redis.values) == sorted(key.redis_key for key in keys[:2])
    assert all(cache.local(key) == RESULT for key in keys)
    assert metrics.cache_errors.labels("set")._value.get() == 1


@pytest.mark.parametrize("corruption", [b"garbage", b""])
def test_invalid_entries_in_redis_are_misses_and_counted(corruption: bytes) -> None:
    redis = MemoryRedis()
    redis.values[KEY.redis_key] = corruption or EntryCodec(b"other" * 8).pack(KEY.digest, RESULT)
    metrics = Metrics()
    compute = Counting(delay=0)
    _, outcome = asyncio.run(fetched(make_cache(redis, metrics), compute))
    assert outcome is Outcome.MISS and compute.calls == 1
    assert metrics.cache_verification_failures.labels("m")._value.get() == 1


STALE_POLICY = CachePolicy(True, 60, 10_000, stale_if_error_s=30)


async def triton_down() -> InferResult:
    raise TritonUnavailable("Triton is unavailable: refused")


def test_an_expired_entry_answers_when_triton_cannot_within_its_grace() -> None:
    redis = MemoryRedis()
    cache = make_cache(redis)

    async def scenario() -> None:
        await cache.get_or_compute(KEY, Counting(0), STALE_POLICY)
        await cache.flush(1.0)
        assert redis._left(KEY.redis_key) > 60  # kept for the TTL plus the grace
        redis.expires[KEY.redis_key] = time.monotonic() + 10  # past its TTL: stale
        cache._local.purge()
        assert await cache.get_or_compute(KEY, triton_down, STALE_POLICY) == (RESULT, Outcome.STALE)
        with pytest.raises(TritonUnavailable):  # the client said stale-if-error=0
            await cache.get_or_compute(KEY, triton_down, STALE_POLICY, allow_stale=False)
        fresh = await cache.get_or_compute(KEY, Counting(0), STALE_POLICY)
        assert fresh == (RESULT, Outcome.MISS)  # Triton back: a stale entry is a miss

    asyncio.run(scenario())


def test_no_stale_answers_for_a_model_without_a_grace() -> None:
    redis = MemoryRedis()
    cache = make_cache(redis)
    strict = CachePolicy(True, 60, 10_000, stale_if_error_s=0)

    async def scenario() -> None:
        await cache.get_or_compute(KEY, Counting(0), strict)
        await cache.flush(1.0)
        redis.expires[KEY.redis_key] = time.monotonic() - 1  # what Redis has deleted
        del redis.values[KEY.redis_key]
        cache._local.purge()
        with pytest.raises(TritonUnavailable):
            await cache.get_or_compute(KEY, triton_down, strict)

    asyncio.run(scenario())


def test_get_or_compute_counts_each_outcome_by_tier_and_what_it_saved() -> None:
    redis, metrics, other_metrics = MemoryRedis(), Metrics(), Metrics()
    cache, other_process = make_cache(redis, metrics), make_cache(redis, other_metrics)

    def count(m: Metrics, outcome: str) -> float:
        return float(m.cache_lookups.labels("m", outcome)._value.get())

    def hits(m: Metrics, tier: str) -> float:
        return float(m.cache_hits.labels("m", tier)._value.get())

    async def scenario() -> list[Outcome]:
        outcomes = [(await fetched(cache, Counting(0)))[1]]
        outcomes.append((await cache.get_or_compute(KEY, Counting(0), POLICY))[1])  # local
        outcomes.append((await other_process.get_or_compute(KEY, Counting(0), POLICY))[1])
        no_cache = await cache.get_or_compute(KEY, Counting(0), POLICY, Directive.WRITE_ONLY)
        outcomes.append(no_cache[1])
        cache.bypassed("m")
        return outcomes

    outcomes = asyncio.run(scenario())
    assert outcomes == [Outcome.MISS, Outcome.HIT, Outcome.HIT, Outcome.BYPASS]
    assert (count(metrics, "miss"), count(metrics, "hit"), count(metrics, "bypass")) == (1, 1, 2)
    assert (hits(metrics, "local"), hits(other_metrics, "redis")) == (1, 1)
    saved = metrics.cache_bytes_saved.labels("m")._value.get()
    assert saved == len(RESULT.outputs[0].data)

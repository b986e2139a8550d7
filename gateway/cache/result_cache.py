"""`ResultCache`: two tiers, single-flight, fail-open, counting its own outcomes.

    replay(memo_key, model)           an encoded response of an identical earlier request
                                                                              -> hit (local)
    remember(memo_key, replay, ...)   keep an encoded response for `replay`
    get_or_compute(key, compute, policy, directive, allow_stale)
        Cache-Control: no-cache?  compute and store                          -> bypass
        the in-process tier has it?                                          -> hit (local)
        everything else, once per key at a time:
        another request of this process already fetching it?  wait for it   -> coalesced
        one Redis round trip: the entry (-> hit), or else the key's `Lock`
        another process holds the lock?  wait (bounded) for its entry        -> coalesced
        otherwise compute (ask Triton) and store                             -> miss
        Triton unavailable, the entry past its TTL but within the model's
          stale-if-error grace (and the request allows it)?  serve it        -> stale
    bypassed(model)                   a request that did not consult the cache  -> bypass
    store(key, result, policy)        both tiers, if the entry fits the model's limit: this
                                      process's at once, Redis (one round trip that also
                                      releases the lock) in the background
    flush(timeout_s)                  wait for the background Redis writes (at shutdown)

Each outcome is counted here: `gateway_cache_lookups_total{outcome}`, hits by tier, and the
bytes and Triton seconds a hit or a coalesced request saved.

Writing behind keeps the Redis write off the answer's path: a miss is answered as soon as
Triton has answered. Other processes waiting for the key's lock see the entry a round trip
later than the answer goes out; requests of this process find it in the in-process tier
at once. At most `MAX_PENDING_WRITES` writes wait at a time (only a slow Redis gets there):
beyond that an entry stays in this process's tier only, counted as a failed `set`, and its
lock expires by itself.

The response memo is the hit path's shortcut: identical request bytes (same tenant, model,
version and fingerprint) always get identical response bytes, so a repeat skips decoding,
hashing tensors and encoding. It lives in the in-process tier, with its TTL and purges.

Redis failures (timeouts, a dead server, an open breaker) never fail a request: they count
in `gateway_cache_errors_total{operation}` and the request goes on to Triton. An entry that
fails verification counts in `gateway_cache_verification_failures_total` and is a miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from opentelemetry.trace import Span

from gateway.cache.entry import EntryCodec, InvalidEntry
from gateway.cache.local import LocalTier
from gateway.cache.policy import CachePolicy, Directive
from gateway.cache.redis_tier import Lock, Lookup, RedisTier, entry_key
from gateway.errors import TritonUnavailable
from gateway.observability.metrics import Metrics
from gateway.observability.spans import Spans
from gateway.protocol.encode import EncodedResponse
from gateway.protocol.types import InferResult
from resilience import StoreUnavailable
from resilience.breaker import REDIS_FAILURES

logger = logging.getLogger(__name__)

_MEMO = {"gateway.cache.tier": "local", "gateway.cache.entry": "response"}
_LOCAL = {"gateway.cache.tier": "local", "gateway.cache.entry": "result"}
_REDIS = {"gateway.cache.tier": "redis", "gateway.cache.entry": "result"}
Compute = Callable[[], Awaitable[InferResult]]
MAX_PENDING_WRITES = 1000
# What the objects around the payload cost in memory (tracemalloc, CPython 3.11), rounded
# up: an InferResult and its tuple; each Tensor with its shape tuple and its data's bytes
# object header; a Replay with its EncodedResponse and body's bytes object header.
RESULT_OVERHEAD_BYTES = 160
TENSOR_OVERHEAD_BYTES = 224
REPLAY_OVERHEAD_BYTES = 192


class Outcome(StrEnum):
    """How a request was answered, as reported in `X-Cache`."""

    HIT = "hit"
    MISS = "miss"
    COALESCED = "coalesced"
    BYPASS = "bypass"
    STALE = "stale"  # Triton could not answer; an entry past its TTL, within its grace

    @classmethod
    def combined(cls, parts: Iterable[Outcome]) -> Outcome:
        """The outcome of an answer made of parts (rows, inputs): a miss if Triton computed
        any part, else the first of bypass, stale, coalesced found, else a hit."""
        found = set(parts)
        for outcome in (cls.MISS, cls.BYPASS, cls.STALE, cls.COALESCED):
            if outcome in found:
                return outcome
        return cls.HIT


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A request's cache key with what is needed to find and file its entry."""

    digest: bytes
    model: str
    version: str

    @property
    def redis_key(self) -> str:
        return entry_key(self.model, self.version, self.digest)


@dataclass(frozen=True, slots=True)
class Replay:
    """An encoded response kept for identical requests, with its output size and the
    seconds Triton took for it."""

    response: EncodedResponse
    output_bytes: int
    triton_s: float = 0.0


@dataclass(frozen=True, slots=True)
class LockSettings:
    """Cross-process single-flight: lock lifetime, how long to wait, how often to look."""

    ttl_s: float = 10.0
    wait_s: float = 1.0
    poll_s: float = 0.005


class ResultCache:
    """Inference results in an in-process LRU in front of Redis."""

    def __init__(
        self,
        local_max_bytes: int,
        local_ttl_s: float,
        redis: RedisTier,
        codec: EntryCodec,
        metrics: Metrics,
        lock: LockSettings | None = None,
        spans: Spans | None = None,
    ) -> None:
        self._spans = spans or Spans()
        # Results and replayable responses share the in-process budget half and half.
        self._local: LocalTier[InferResult] = LocalTier(local_max_bytes // 2, local_ttl_s)
        self._memo: LocalTier[Replay] = LocalTier(local_max_bytes // 2, local_ttl_s)
        self._redis = redis
        self._codec = codec
        self._metrics = metrics
        self._lock = lock or LockSettings()
        self._flights: dict[bytes, asyncio.Future[tuple[InferResult, Outcome]]] = {}
        self._writes: set[asyncio.Future[Any]] = set()  # background Redis writes

    @property
    def can_answer(self) -> bool:
        """Whether it may answer requests: Redis is not known to be failing, or this
        process holds entries of its own."""
        return self._redis.available or len(self._local) > 0

    def replay(self, memo_key: bytes, model: str) -> Replay | None:
        """The response kept for these request bytes, counted as a local hit if found."""
        with self._spans.start("cache.lookup", attributes=_MEMO) as span:
            replay = self._memo.get(memo_key)
            span.set_attribute("gateway.cache.outcome", "miss" if replay is None else "hit")
        if replay is not None:
            self._count(model, Outcome.HIT, replay.output_bytes, replay.triton_s, "local")
        return replay

    def remember(
        self, memo_key: bytes, replay: Replay, model: str, version: str, policy: CachePolicy
    ) -> None:
        response = replay.response
        # A right-sized copy: orjson's output can hold several KB of spare capacity.
        body = bytes(memoryview(response.body))
        copy = EncodedResponse(body, response.content_type, response.header_length)
        kept = Replay(copy, replay.output_bytes, replay.triton_s)
        self._memo.put(
            memo_key, kept, len(body) + REPLAY_OVERHEAD_BYTES, policy.ttl_s, model, version
        )

    async def get_or_compute(
        self,
        key: CacheKey,
        compute: Compute,
        policy: CachePolicy,
        directive: Directive = Directive.READ_AND_WRITE,
        allow_stale: bool = True,
    ) -> tuple[InferResult, Outcome]:
        """The result for `key` from a tier, another request's flight, or `compute`."""
        if directive is Directive.WRITE_ONLY:
            result = await compute()
            self.store(key, result, policy)
            self.bypassed(key.model)
            return result, Outcome.BYPASS
        with self._spans.start("cache.lookup", attributes=_LOCAL) as span:
            cached = self._local.get(key.digest)
            span.set_attribute("gateway.cache.outcome", "miss" if cached is None else "hit")
        if cached is not None:
            self._count(key.model, Outcome.HIT, _output_bytes(cached), cached.triton_s, "local")
            return cached, Outcome.HIT
        result, outcome = await self._fetch(key, compute, policy, allow_stale)
        self._count(key.model, outcome, _output_bytes(result), result.triton_s, "redis")
        return result, outcome

    def local(self, key: CacheKey) -> InferResult | None:
        """What this process's tier holds for `key` (nothing counted)."""
        return self._local.get(key.digest)

    def warmed(self, model: str, outcome: str, count: int) -> None:
        """Count requests a warm-up replayed (`computed` or `cached`)."""
        if count:
            self._metrics.cache_warmup_requests.labels(model, outcome).inc(count)

    def bypassed(self, model: str) -> None:
        """Count a request answered without the cache (uncacheable, or Cache-Control)."""
        self._metrics.cache_lookups.labels(model, Outcome.BYPASS.value).inc()

    def _count(
        self, model: str, outcome: Outcome, output_bytes: int, triton_s: float, tier: str
    ) -> None:
        self._metrics.cache_lookups.labels(model, outcome.value).inc()
        if outcome is Outcome.HIT:
            self._metrics.cache_hits.labels(model, tier).inc()
        if outcome in (Outcome.HIT, Outcome.COALESCED):
            self._metrics.cache_bytes_saved.labels(model).inc(output_bytes)
            self._metrics.cache_triton_seconds_saved.labels(model).inc(triton_s)

    async def _fetch(
        self, key: CacheKey, compute: Compute, policy: CachePolicy, allow_stale: bool
    ) -> tuple[InferResult, Outcome]:
        flight = self._flights.get(key.digest)
        if flight is not None:
            with self._spans.start(
                "cache.singleflight.wait", attributes={"gateway.cache.waiting_for": "process"}
            ):
                result, outcome = await asyncio.shield(flight)
            if outcome is Outcome.STALE and not allow_stale:
                return await self._fetch(key, compute, policy, allow_stale)  # its own try
            return result, Outcome.STALE if outcome is Outcome.STALE else Outcome.COALESCED
        future: asyncio.Future[tuple[InferResult, Outcome]] = (
            asyncio.get_running_loop().create_future()
        )
        self._flights[key.digest] = future
        try:
            answer = await self._lead(key, compute, policy, allow_stale)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: followers re-raise it, none may be waiting
            raise
        else:
            future.set_result(answer)
            return answer
        finally:
            del self._flights[key.digest]

    def store(
        self, key: CacheKey, result: InferResult, policy: CachePolicy, token: str = ""
    ) -> None:
        """Keep `result` in both tiers and release the lock `token` (if any) in Redis; the
        Redis write happens in the background."""
        value = self._codec.pack(key.digest, result)
        if len(value) > policy.max_entry_bytes:
            if token:
                self._behind(lambda: self._unlock(key, token))
            return
        self._local.put(key.digest, result, _cost(result), policy.ttl_s, key.model, key.version)
        if not self._room_for_a_write():
            return
        span = self._spans.begin("cache.store", {"gateway.cache.entry_bytes": len(value)})
        life_s = policy.ttl_s + policy.stale_if_error_s  # stale for the grace's length
        # Not a task per write: the call joins this turn's Redis pipeline, and its answer's
        # callback does the bookkeeping.
        answer = self._redis.set_soon(key.redis_key, value, life_s, key.digest, token)
        if answer is None:  # circuit open
            self._written(span, None)
            return
        self._writes.add(answer)
        answer.add_done_callback(partial(self._written, span))

    async def flush(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the background Redis writes still under way."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout_s)

    async def purge(self, model: str | None = None, version: str | None = None) -> int:
        """Delete entries of a model version, a model, or all; raises StoreUnavailable."""
        self._drop_local(model, version)
        return await self._redis.purge(model, version)

    async def follow_purges(self) -> None:
        """Apply purges announced by other processes to this process's tier, forever."""
        while True:
            try:
                async for model, version in self._redis.purge_events():
                    self._drop_local(model, version)
            except REDIS_FAILURES as exc:
                logger.debug("purge subscription lost (%s); resubscribing", type(exc).__name__)
            except Exception:  # whatever it was, a subscription must not end for good
                logger.exception("purge subscription failed; resubscribing")
            await asyncio.sleep(1.0)

    def _drop_local(self, model: str | None, version: str | None) -> None:
        self._local.purge(model, version)
        self._memo.purge(model, version)

    async def _lead(
        self, key: CacheKey, compute: Compute, policy: CachePolicy, allow_stale: bool
    ) -> tuple[InferResult, Outcome]:
        grace_s = policy.stale_if_error_s
        with self._spans.start("cache.lookup", attributes=_REDIS) as span:
            try:
                found = await self._redis.get_or_lock(
                    key.redis_key, key.digest, self._lock.ttl_s, grace_s
                )
            except StoreUnavailable:
                self._metrics.cache_errors.labels("get").inc()
                found = Lookup()  # compute without the lock
            stored = self._verified(key, found.fresh) if found.fresh is not None else None
            span.set_attribute("gateway.cache.outcome", "miss" if stored is None else "hit")
        if stored is not None:
            self._local.put(key.digest, stored, _cost(stored), policy.ttl_s, key.model, key.version)
            return stored, Outcome.HIT
        # An invalid entry (found.fresh, not verified) is computed and overwritten; no lock was
        # asked for then.
        token = found.token
        if found.lock is Lock.HELD_ELSEWHERE:  # another process computes it: wait for its entry
            with self._spans.start(
                "cache.singleflight.wait", attributes={"gateway.cache.waiting_for": "redis"}
            ):
                waited = await self._wait_for_entry(key, grace_s)
            if waited is not None:
                return waited, Outcome.COALESCED
        try:
            result = await compute()
        except TritonUnavailable:
            await self._unlock(key, token)
            stale = self._verified(key, found.stale) if allow_stale and found.stale else None
            if stale is None:
                raise
            return stale, Outcome.STALE  # RFC 5861 stale-if-error: better than a 503
        except BaseException:
            await self._unlock(key, token)
            raise
        self.store(key, result, policy, token)
        return result, Outcome.MISS

    def _verified(self, key: CacheKey, value: bytes) -> InferResult | None:
        try:
            return self._codec.unpack(key.digest, key.model, value)
        except InvalidEntry as exc:
            self._metrics.cache_verification_failures.labels(key.model).inc()
            logger.warning("ignored an invalid cache entry for model %s: %s", key.model, exc)
            return None

    def _room_for_a_write(self) -> bool:
        """Whether another background write may start (else it counts as a failed `set`)."""
        if len(self._writes) < MAX_PENDING_WRITES:
            return True
        self._metrics.cache_errors.labels("set").inc()
        return False

    def _behind(self, write: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if not self._room_for_a_write():
            return
        task = asyncio.get_running_loop().create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _written(self, span: Span, answer: asyncio.Future[Any] | None) -> None:
        """A background store ended (None: it could not start)."""
        if answer is not None:
            self._writes.discard(answer)
        if answer is None or answer.cancelled() or answer.exception() is not None:
            self._metrics.cache_errors.labels("set").inc()
            span.set_attribute("gateway.cache.stored", False)
        span.end()

    async def _unlock(self, key: CacheKey, token: str) -> None:
        if token:
            with contextlib.suppress(StoreUnavailable):
                await self._redis.unlock(key.digest, token)

    async def _wait_for_entry(self, key: CacheKey, grace_s: float) -> InferResult | None:
        """The lock holder's entry; None (compute it here) once the holder let go of the
        lock without storing one (it failed), or after `wait_s` (it is stuck)."""
        deadline = time.monotonic() + self._lock.wait_s
        while time.monotonic() < deadline:
            await asyncio.sleep(self._lock.poll_s)
            try:
                value, locked = await self._redis.get_while_locked(
                    key.redis_key, key.digest, grace_s
                )
            except StoreUnavailable:
                return None
            if value is not None:
                return self._verified(key, value)
            if not locked:
                return None
        return None


def _output_bytes(result: InferResult) -> int:
    return sum(len(tensor.data) for tensor in result.outputs)


def _cost(result: InferResult) -> int:
    """What keeping `result` costs in memory, in bytes."""
    tensors = sum(len(t.data) + TENSOR_OVERHEAD_BYTES for t in result.outputs)
    return RESULT_OVERHEAD_BYTES + tensors

"""A circuit breaker: for calls to Redis here, and (its state machine) for Triton's.

After `failure_threshold` consecutive failures it opens: calls fail at once with
`StoreUnavailable` instead of each waiting for a timeout, so a dead or hung Redis costs
requests nothing. After `reset_after_s` one trial call is let through (half-open); its
success closes the breaker, its failure opens it again. `trip()` opens it at once (a health
probe that knows better than the calls). State changes are logged once each and reported
to `on_change` (for a gauge). Other callers use `allow()`, `record_success()`,
`record_failure()` and `abandon_trial()` around calls of their own kind; `call()` is the
Redis one, and `record(answer)` the same bookkeeping for a Redis call nobody awaits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis

from resilience.errors import StoreFull, StoreUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What a failing Redis raises: its own errors, OS-level socket errors, asyncio timeouts.
REDIS_FAILURES: tuple[type[BaseException], ...] = (redis.RedisError, OSError, asyncio.TimeoutError)


class CircuitBreaker:
    """Fails fast while a dependency is known to be down."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_after_s: float = 5.0,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._on_change = on_change
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    @property
    def available(self) -> bool:
        """Whether `allow()` would let a call through now (it claims nothing)."""
        if self._opened_at is None:
            return True
        return not self._trial_running and self._clock() - self._opened_at >= self.reset_after_s

    def allow(self) -> bool:
        """Whether a call may go ahead now (in half-open state: the one trial)."""
        if self._opened_at is None:
            return True
        if self._trial_running or self._clock() - self._opened_at < self.reset_after_s:
            return False
        self._trial_running = True  # half-open: this caller is the trial
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._trial_running = False
        if self._opened_at is not None:
            self._opened_at = None
            logger.info("%s is reachable again; circuit closed", self.name)
            if self._on_change:
                self._on_change(True)

    def abandon_trial(self) -> None:
        """The call let through ended as neither success nor failure (it was cancelled)."""
        self._trial_running = False

    def trip(self, reason: str) -> None:
        """Open now, whatever the count of failures (e.g. a health probe failed)."""
        self._trial_running = False
        if self._opened_at is not None:
            self._opened_at = self._clock()
            return
        self._opened_at = self._clock()
        logger.warning("%s: %s; circuit open for %.1f s", self.name, reason, self.reset_after_s)
        if self._on_change:
            self._on_change(False)

    def record_failure(self, error: BaseException) -> None:
        self._failures += 1
        was_trial = self._trial_running
        self._trial_running = False
        if self._opened_at is not None:
            if was_trial:
                self._opened_at = self._clock()  # stay open for another period
            return
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            logger.warning(
                "%s failed %d times in a row (%s); circuit open for %.1f s",
                self.name,
                self._failures,
                type(error).__name__,
                self.reset_after_s,
            )
            if self._on_change:
                self._on_change(False)

    def record(self, answer: asyncio.Future[Any]) -> None:
        """Record how a Redis call let through by `allow()` ended, as `call()` would: a done
        callback for calls that run in the background."""
        if answer.cancelled():
            self.abandon_trial()
            return
        error = answer.exception()
        if error is None:
            self.record_success()
        elif isinstance(error, REDIS_FAILURES):
            self.record_failure(error)
        else:
            self.abandon_trial()

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation`; a Redis failure or an open circuit raises `StoreUnavailable`."""
        if not self.allow():
            raise StoreUnavailable(f"{self.name}: circuit open")
        try:
            result = await operation()
        except redis.OutOfMemoryError as exc:  # Redis answers, but takes no more writes
            self.record_success()
            raise StoreFull(f"{self.name}: Redis is full (maxmemory reached)") from exc
        except REDIS_FAILURES as exc:
            self.record_failure(exc)
            raise StoreUnavailable(f"{self.name}: {type(exc).__name__}") from exc
        except BaseException:  # cancelled: neither success nor failure, free the trial slot
            self.abandon_trial()
            raise
        self.record_success()
        return result

"""Failing fast and failing clearly while a dependency is down; used by `auth` and `gateway`.

breaker.py   CircuitBreaker: after repeated failures, calls fail at once for a while;
             REDIS_FAILURES: what a failing Redis raises
errors.py    StoreUnavailable: a Redis call failed, timed out or met an open breaker;
             StoreFull: Redis refused a write, being full (it still answers)
"""

from resilience.breaker import REDIS_FAILURES, CircuitBreaker
from resilience.errors import StoreFull, StoreUnavailable

__all__ = ["REDIS_FAILURES", "CircuitBreaker", "StoreFull", "StoreUnavailable"]

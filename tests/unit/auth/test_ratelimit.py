"""GCRA in-process: bursts, steady rate, headers."""

from __future__ import annotations

from auth import LocalRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_steady_rate() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(clock=clock)
    decisions = [limiter.check("k", rate_per_second=2, burst=3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    refused = decisions[3]
    assert 0.49 < refused.retry_after_s <= 0.5
    assert refused.headers()["Retry-After"] == "1"
    assert refused.headers()["RateLimit-Limit"] == "3"
    clock.now += 0.5
    assert limiter.check("k", 2, 3).allowed
    assert not limiter.check("k", 2, 3).allowed


def test_keys_are_limited_independently_and_recover_fully() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(clock=clock)
    assert limiter.check("a", 1, 1).allowed
    assert not limiter.check("a", 1, 1).allowed
    assert limiter.check("b", 1, 1).allowed
    clock.now += 10
    decision = limiter.check("a", 1, 1)
    assert decision.allowed and decision.remaining == 0
    assert "Retry-After" not in decision.headers()

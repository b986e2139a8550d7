"""The load test's mix of users (weights of locustfile.py's classes) and what a step of them
offers: the rate-limited users send twice their key's limit, not LOADTEST_USER_RPS, so a
step's offered load is the weighted mean of the classes' rates, not users x user rate."""

from __future__ import annotations

# class -> weight (locustfile.py reads these)
WEIGHTS = {"HitHeavy": 4, "MissOnly": 1, "ModelMix": 2, "RateLimited": 1}


def offered_per_user(user_rps: float, rate_limit: float) -> float | None:
    """Mean requests/s a user of the mix offers; None when users send back to back."""
    if user_rps <= 0:
        return None
    total = sum(WEIGHTS.values())
    paced = total - WEIGHTS["RateLimited"]
    return (paced * user_rps + WEIGHTS["RateLimited"] * 2 * rate_limit) / total

"""Which Triton takes a call, and which Tritons are left out for a while.

    choose(candidates, model)      least outstanding requests of two picked at random
                                   (Envoy's `least_request`, choice_count 2): this worker's
                                   calls in flight plus what other gateways queued at
                                   that Triton for the model (its metrics, last probe)
    stick(candidates, key)         rendezvous hashing: a sequence's requests (its
                                   correlation id) all go to the same Triton while it stays
                                   a candidate, and only its sequences move when it leaves
    Outliers                       outlier ejection: FAILURES_IN_A_ROW failures of a Triton
                                   (transport errors, 5xx, timeouts) leave it out of the
                                   candidates for EJECTION_S, longer each time (up to
                                   MAX_EJECTION_S), never the last one left; a success
                                   after an ejection shortens the next one again

Ejection composes with each Triton's breaker (`gateway.backends.triton.health`), which stays the
fast path for a Triton that stopped answering at all.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence

from gateway.backends.triton.endpoint import Endpoint

logger = logging.getLogger(__name__)

FAILURES_IN_A_ROW = 3
EJECTION_S = 5.0
MAX_EJECTION_S = 60.0


def choose(candidates: Sequence[Endpoint], model: str, rng: random.Random) -> Endpoint:
    if len(candidates) == 1:
        return candidates[0]
    first, second = rng.sample(list(candidates), 2)
    return first if first.load(model) <= second.load(model) else second


def stick(candidates: Sequence[Endpoint], key: str) -> Endpoint:
    def weight(endpoint: Endpoint) -> bytes:
        return hashlib.blake2b(f"{key}\0{endpoint.url}".encode(), digest_size=8).digest()

    return max(candidates, key=weight)


class Outliers:
    """Outlier ejection over a set of endpoints (see the module's docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock

    def ejected(self, endpoint: Endpoint) -> bool:
        return self._clock() < endpoint.ejected_until

    def succeeded(self, endpoint: Endpoint) -> None:
        endpoint.failures_in_a_row = 0
        if endpoint.ejections and self._clock() > endpoint.ejected_until + EJECTION_S:
            endpoint.ejections -= 1  # healthy for a while: the next ejection is shorter

    def failed(self, endpoint: Endpoint, every: Sequence[Endpoint], reason: str) -> None:
        endpoint.failures_in_a_row += 1
        if endpoint.failures_in_a_row < FAILURES_IN_A_ROW or self.ejected(endpoint):
            return
        if not [e for e in every if e is not endpoint and not self.ejected(e)]:
            return  # never the last one: with no other, a failing Triton beats none
        endpoint.ejections += 1
        seconds = min(EJECTION_S * endpoint.ejections, MAX_EJECTION_S)
        endpoint.ejected_until = self._clock() + seconds
        endpoint.failures_in_a_row = 0
        logger.warning(
            "Triton %s failed %d times in a row (%s); left out for %.0f s",
            endpoint.url,
            FAILURES_IN_A_ROW,
            reason,
            seconds,
        )

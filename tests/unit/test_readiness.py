"""Readiness means "this worker can serve": from its cache or from Triton, until a drain."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway.services import Services


def services(triton_ready: bool, cache_can_answer: bool) -> Services:
    return SimpleNamespace(  # type: ignore[return-value]
        triton_health=SimpleNamespace(ready=triton_ready),
        cache=SimpleNamespace(can_answer=cache_can_answer),
    )


@pytest.mark.parametrize(
    ("triton_ready", "cache_can_answer", "draining", "reason"),
    [
        (True, True, False, None),
        (False, True, False, None),  # a Triton outage: the cache still answers
        (True, False, False, None),  # Redis failing: Triton still answers
        (False, False, False, "no Triton is ready and the result cache cannot answer"),
        (True, True, True, "this gateway is shutting down"),
    ],
)
def test_ready_while_the_cache_or_triton_can_answer(
    triton_ready: bool, cache_can_answer: bool, draining: bool, reason: str | None
) -> None:
    ready = services(triton_ready, cache_can_answer)
    assert Services.unready_reason(ready, draining) == reason

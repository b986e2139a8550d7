"""Readiness follows the probe; only probes without an answer trip Triton's breaker."""

from __future__ import annotations

import asyncio

from gateway.triton.client import Readiness
from gateway.triton.health import TRIP_AFTER, TritonHealth


class FakeClient:
    """What the probe asks of the Triton client, scripted."""

    def __init__(self, answers: list[Readiness]) -> None:
        self.answers = answers
        self.events: list[str] = []

    async def readiness(self, timeout_s: float) -> Readiness:
        return self.answers.pop(0)

    def trip(self, reason: str) -> None:
        self.events.append("trip")

    def recovered(self) -> None:
        self.events.append("recovered")


def probes(answers: list[Readiness]) -> tuple[list[bool], list[str]]:
    client = FakeClient(answers)
    health = TritonHealth(client, interval_s=1, timeout_s=1)  # type: ignore[arg-type]
    seen = []
    for _ in range(len(answers)):
        asyncio.run(health.probe())
        seen.append(health.ready)
    return seen, client.events


def test_a_model_reloading_is_not_an_outage() -> None:
    ready, events = probes([Readiness.READY, Readiness.NOT_READY, Readiness.NOT_READY] * 2)
    assert ready == [True, False, False] * 2
    assert events == []


def test_probes_without_an_answer_trip_once_and_an_answer_recovers() -> None:
    silent = [Readiness.NO_ANSWER] * (TRIP_AFTER + 2)
    ready, events = probes([Readiness.READY, *silent, Readiness.NOT_READY, Readiness.READY])
    assert ready == [True] + [False] * len(silent) + [False, True]
    assert events == ["trip", "recovered"]
    _, once = probes([Readiness.NO_ANSWER, Readiness.READY] * 3)  # single misses: no trip
    assert once == []

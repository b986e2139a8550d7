"""Readiness follows the probe; only probes without an answer trip Triton's breaker."""

from __future__ import annotations

import asyncio

from gateway.backends.triton.client import Readiness
from gateway.backends.triton.health import TRIP_AFTER, TritonHealth


class FakeEndpoint:
    url = "http://triton:8000"
    probe_ready = False


class FakeClient:
    """What the probe asks of the Triton client, scripted (one Triton)."""

    def __init__(self, answers: list[Readiness]) -> None:
        self.answers = answers
        self.events: list[str] = []
        self.endpoints = [FakeEndpoint()]

    async def readiness(self, endpoint: FakeEndpoint, timeout_s: float) -> Readiness:
        return self.answers.pop(0)

    async def refresh(self, endpoint: FakeEndpoint, timeout_s: float) -> None:
        self.events.append("refresh")

    def trip(self, endpoint: FakeEndpoint, reason: str) -> None:
        self.events.append("trip")

    def recovered(self, endpoint: FakeEndpoint) -> None:
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
    assert events == ["refresh"] * 6  # an answer, even "not ready": its index is read


def test_probes_without_an_answer_trip_once_and_an_answer_recovers() -> None:
    silent = [Readiness.NO_ANSWER] * (TRIP_AFTER + 2)
    ready, events = probes([Readiness.READY, *silent, Readiness.NOT_READY, Readiness.READY])
    assert ready == [True] + [False] * len(silent) + [False, True]
    assert [e for e in events if e != "refresh"] == ["trip", "recovered"]
    _, once = probes([Readiness.NO_ANSWER, Readiness.READY] * 3)  # single misses: no trip
    assert "trip" not in once

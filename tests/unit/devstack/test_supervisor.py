"""The backend supervisor's decisions, with backends and time as fakes (the boundary)."""

from __future__ import annotations

from devstack.process import EmbeddedServiceError
from devstack.supervisor import (
    BACKOFF_S,
    GIVE_UP_AFTER,
    HANG_CHECKS,
    BackendSupervisor,
)


class FakeBackend:
    def __init__(self) -> None:
        self.name = "Triton"
        self.alive = True
        self.answers = True
        self.restarts = 0
        self.fail_to_start = False

    def running(self) -> bool:
        return self.alive

    def healthy(self) -> bool:
        return self.answers

    def restart(self) -> None:
        self.restarts += 1
        if self.fail_to_start:
            self.alive = False
            raise EmbeddedServiceError("no luck")
        self.alive, self.answers = True, True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False  # not stopping


def supervised(
    backend: FakeBackend, clock: Clock
) -> tuple[BackendSupervisor, list[list[dict[str, object]]]]:
    reports: list[list[dict[str, object]]] = []
    supervisor = BackendSupervisor([backend], reports.append, clock=clock, wait=clock.wait)
    return supervisor, reports


def test_an_exited_backend_is_restarted_and_reported() -> None:
    backend, clock = FakeBackend(), Clock()
    supervisor, reports = supervised(backend, clock)
    supervisor.check(backend)
    assert backend.restarts == 0 and reports == []
    backend.alive = False
    supervisor.check(backend)
    assert backend.restarts == 1 and clock.waits == [BACKOFF_S[0]]
    assert [r[0]["state"] for r in reports] == ["restarting", "up"]
    assert reports[-1][0]["restarts"] == 1 and reports[-1][0]["last_reason"] == "it exited"


def test_a_hung_backend_is_restarted_after_its_checks_fail() -> None:
    backend, clock = FakeBackend(), Clock()
    supervisor, _ = supervised(backend, clock)
    backend.answers = False
    for _ in range(HANG_CHECKS - 1):
        supervisor.check(backend)
    assert backend.restarts == 0  # a slow moment is no hang
    supervisor.check(backend)
    assert backend.restarts == 1


def test_backoff_grows_then_a_crash_loop_gives_up() -> None:
    backend, clock = FakeBackend(), Clock()
    supervisor, reports = supervised(backend, clock)
    for _ in range(GIVE_UP_AFTER + 3):
        backend.alive = False
        supervisor.check(backend)
    assert clock.waits == list(BACKOFF_S[:GIVE_UP_AFTER])
    assert backend.restarts == GIVE_UP_AFTER
    assert reports[-1][0]["state"] == "down"


def test_a_backend_that_does_not_start_is_tried_again_with_more_backoff() -> None:
    backend, clock = FakeBackend(), Clock()
    supervisor, _ = supervised(backend, clock)
    backend.alive, backend.fail_to_start = False, True
    supervisor.check(backend)
    supervisor.check(backend)
    assert backend.restarts == 2 and clock.waits == [BACKOFF_S[0], BACKOFF_S[1]]

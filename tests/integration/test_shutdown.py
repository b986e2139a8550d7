"""Stopping is bounded: SIGTERM ends `gateway serve` even while clients hold requests open."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from devstack import EmbeddedRedis, EmbeddedTriton
from loadtests.investigations import stop_cycles
from tests.support.keys import ADMIN_KEY, auth_headers
from tests.support.metrics import value
from tests.support.polling import eventually
from tests.support.processes import wait_gone
from tests.support.serve import Served, gateway_serve, ready

GRACE_S = 1


@pytest.fixture
def serve(triton: EmbeddedTriton, redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[Served]:
    """`gateway serve --workers 2` with a short shutdown grace."""
    with gateway_serve(
        triton,
        redis_server,
        tmp_path,
        GATEWAY_SHUTDOWN_GRACE_S=str(GRACE_S),
        # a complex setting, handed to the workers (it once crashed them)
        GATEWAY_CACHE_MODELS='{"digits_classifier": {"enabled": false}}',
    ) as served:
        yield served


def test_sigterm_stops_both_workers_while_bodies_never_arrive(serve: Served) -> None:
    process = serve.process
    image = {"name": "image", "shape": [1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}
    answer = httpx.post(
        f"{serve.url}/v2/models/digits_classifier/infer",
        json={"inputs": [image]},
        headers=auth_headers(),
    )
    assert answer.headers["x-cache"] == "bypass"  # GATEWAY_CACHE_MODELS reached the worker
    children = psutil.Process(process.pid).children()  # two workers, a resource tracker
    assert len(children) >= 2
    stalled = []
    for _ in range(8):  # requests announcing 1000 bytes of body and sending 4
        connection = socket.create_connection(("127.0.0.1", serve.port))
        connection.sendall(
            b"POST /v2/models/tabular_classifier/infer HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"in'
        )
        stalled.append(connection)
    try:
        # in flight in the workers together (the kernel spreads connections over both)
        eventually(
            lambda: (
                value(httpx.get(f"{serve.url}/metrics").text, "gateway_in_flight_requests") >= 8
            ),
            timeout_s=30,
        )
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(60)  # without a bound on the drain: until the clients give up
        took = time.monotonic() - started
        assert took < 2 * GRACE_S + 10, took
        assert wait_gone([child.pid for child in children], 5) == []
    finally:
        for connection in stalled:
            connection.close()


def test_repeated_stops_under_load_never_hang(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """A few cycles of `loadtests/investigations/stop_cycles.py` (50: see its closing line)."""
    assert stop_cycles.run((triton, redis_server.url), tmp_path, cycles=3, grace_s=1.0)


def workers_of(process: psutil.Process) -> set[int]:
    """The pids of the live worker processes (spawned; not the resource tracker, nor a dead
    worker not yet reaped)."""
    workers = set()
    for child in process.children():
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                workers.add(child.pid)
        except psutil.Error:  # a zombie (killed, not yet reaped) or gone
            continue
    return workers


def test_a_worker_that_dies_is_logged_and_replaced(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with gateway_serve(triton, redis_server, tmp_path, log=log) as served:
        supervisor = psutil.Process(served.process.pid)
        before = workers_of(supervisor)
        assert len(before) == 2
        victim = min(before)
        psutil.Process(victim).kill()
        eventually(
            lambda: len(workers_of(supervisor) - before) == 1 and len(workers_of(supervisor)) == 2,
            timeout_s=60,
            what="a new worker replaces the dead one",
        )
        eventually(lambda: ready(served.url, served.process), timeout_s=60, what="serving again")
        lines = log.read_text(errors="replace")
        assert f"worker {victim} died (killed by signal 9); starting another" in lines, lines[
            -2000:
        ]

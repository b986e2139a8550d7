"""Stopping is bounded: SIGTERM ends `gateway serve` even while clients hold requests open."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from gateway.embedded import EmbeddedRedis, EmbeddedTriton
from gateway.embedded.ports import free_port
from loadtests import stop_cycles
from tests.support.data import ROOT
from tests.support.keys import ADMIN_KEY, auth_headers
from tests.support.metrics import value
from tests.support.polling import eventually
from tests.support.processes import wait_gone

GRACE_S = 1


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen[bytes]


@pytest.fixture
def serve(triton: EmbeddedTriton, redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[Served]:
    """`gateway serve --workers 2` with a short shutdown grace; yields its URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PROMETHEUS_"))},
        "GATEWAY_TRITON_URL": triton.endpoints.http_url,
        "GATEWAY_REDIS_URL": redis_server.url,
        "GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_STATE_DIR": str(tmp_path),
        "GATEWAY_ACCESS_LOG": "false",
        "GATEWAY_SHUTDOWN_GRACE_S": str(GRACE_S),
        # a complex setting, handed to the workers (it once crashed them)
        "GATEWAY_CACHE_MODELS": '{"digits_classifier": {"enabled": false}}',
    }
    argv = ["gateway", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _ready(url), timeout_s=90)
        yield Served(url, port, process)
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):  # what a failed test left running
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
        process.kill()
        process.wait(30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready").status_code == 200
    except httpx.TransportError:
        return False


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
    """A few cycles of `loadtests/stop_cycles.py` (50 of them: see its closing line)."""
    assert stop_cycles.run((triton, redis_server.url), tmp_path, cycles=3, grace_s=1.0)

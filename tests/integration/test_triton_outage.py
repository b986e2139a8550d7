"""Triton hung, stopped and started again: 503 with Retry-After in time, then service again.

This module runs its own Triton, so stopping it does not disturb the other tests.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.embedded import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.data import samples
from tests.support.keys import AUTH
from tests.support.server import running_gateway

TIMEOUT_S = 1.0
RETRY_AFTER_S = 3
PATH = "/v2/models/tabular_classifier/versions/1/infer"


@pytest.fixture(scope="module")
def own_triton(
    tmp_path_factory: pytest.TempPathFactory, model_repository: Path
) -> Iterator[EmbeddedTriton]:
    server = EmbeddedTriton(
        model_repository, tmp_path_factory.mktemp("own-triton"), models=["tabular_classifier"]
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(own_triton: EmbeddedTriton, redis_server: EmbeddedRedis) -> Iterator[httpx.Client]:
    settings = gateway_settings(
        own_triton,
        redis_server,
        triton_timeout_s=TIMEOUT_S,
        triton_control_timeout_s=TIMEOUT_S,
        retry_after_s=RETRY_AFTER_S,
    )
    with (
        running_gateway(settings) as url,
        # no-store: every request must reach Triton (a cached answer would hide the outage)
        httpx.Client(
            base_url=url, headers={**AUTH, "Cache-Control": "no-store"}, timeout=30
        ) as client,
    ):
        yield client


def request_body() -> dict[str, object]:
    x = samples("tabular_classifier", rows=1)
    return {
        "inputs": [
            {"name": "features", "shape": [1, 30], "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }


def assert_unavailable(response: httpx.Response) -> str:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    message: str = response.json()["error"]
    assert "Triton" in message
    return message


def test_hung_triton_answers_503_within_the_timeout(
    own_triton: EmbeddedTriton, http: httpx.Client
) -> None:
    assert http.post(PATH, json=request_body()).status_code == 200
    assert own_triton.pid is not None
    os.kill(own_triton.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = http.post(PATH, json=request_body())
        elapsed = time.monotonic() - started
        assert "in time" in assert_unavailable(response)
        assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + 1.0
        assert_unavailable(http.get("/v2/health/ready"))
    finally:
        os.kill(own_triton.pid, signal.SIGCONT)
    assert http.post(PATH, json=request_body()).status_code == 200


def test_stopped_triton_answers_503_and_restarted_triton_serves_again(
    own_triton: EmbeddedTriton, http: httpx.Client
) -> None:
    own_triton.stop()
    started = time.monotonic()
    assert_unavailable(http.post(PATH, json=request_body()))
    assert time.monotonic() - started < TIMEOUT_S + 1.0
    assert_unavailable(http.get("/v2/health/ready"))
    assert_unavailable(http.get("/v2/models/tabular_classifier"))

    own_triton.start()  # same ports; the gateway keeps running
    deadline = time.monotonic() + 10
    while (status := http.post(PATH, json=request_body()).status_code) != 200:
        assert status == 503 and time.monotonic() < deadline
        time.sleep(0.2)
    assert http.get("/v2/health/ready").status_code == 200

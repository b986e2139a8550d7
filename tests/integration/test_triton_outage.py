"""Triton hung, stopped and started again: 503 with Retry-After in time, Triton's state at
once (`/health/triton`) while the gateway stays ready (its cache can answer), cache hits
throughout, then service again. A slow model fails alone, at its own deadline.

This module runs its own Triton, so stopping it does not disturb the other tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.data import samples, tabular_body
from tests.support.keys import AUTH
from tests.support.metrics import value
from tests.support.polling import eventually
from tests.support.server import running_gateway

TIMEOUT_S = 1.0
RETRY_AFTER_S = 3
PATH = "/v2/models/tabular_classifier/versions/1/infer"
SLOW_DEADLINE_S = 0.3


def add_slow_model(repository: Path) -> None:
    """`slow_classifier`: tabular_classifier whose batcher holds each request 3 s waiting for
    others to batch with, and whose config sets a 0.3 s inference deadline."""
    shutil.copytree(repository / "tabular_classifier", repository / "slow_classifier")
    config = repository / "slow_classifier" / "config.pbtxt"
    text = config.read_text().replace('name: "tabular_classifier"', 'name: "slow_classifier"')
    text = text.replace(
        "dynamic_batching { max_queue_delay_microseconds: 200 }",
        "dynamic_batching { preferred_batch_size: [ 64 ] max_queue_delay_microseconds: 3000000 }",
    )
    deadline = f'value: {{ string_value: "{SLOW_DEADLINE_S}" }}'
    text += f'parameters {{ key: "inference_timeout_s" {deadline} }}\n'
    config.write_text(text)


@pytest.fixture(scope="module")
def own_triton(
    tmp_path_factory: pytest.TempPathFactory, model_repository: Path
) -> Iterator[EmbeddedTriton]:
    repository = tmp_path_factory.mktemp("outage-models")
    shutil.copytree(model_repository / "tabular_classifier", repository / "tabular_classifier")
    add_slow_model(repository)
    server = EmbeddedTriton(
        repository,
        tmp_path_factory.mktemp("own-triton"),
        models=["tabular_classifier", "slow_classifier"],
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
        triton_probe_s=0.25,
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
    """503, or 504 for a call past its deadline before the health probe found Triton hung."""
    assert response.status_code in (503, 504), response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    message: str = response.json()["error"]
    assert "Triton" in message
    return message


def assert_triton_down_but_gateway_ready(http: httpx.Client) -> None:
    """Triton's own state says so at once; the gateway stays in rotation for its cache."""
    eventually(lambda: http.get("/health/triton").status_code == 503)
    triton = http.get("/health/triton")
    assert triton.json() == {"error": "no Triton is ready", "ready_endpoints": 0, "endpoints": 1}
    assert value(http.get("/metrics").text, "gateway_triton_ready_endpoints") == 0
    assert http.get("/v2/health/ready").status_code == 200


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
        message = assert_unavailable(response)
        assert "in time" in message or "deadline" in message
        assert elapsed < TIMEOUT_S + 1.0  # its deadline, or sooner once the probe trips
        assert_triton_down_but_gateway_ready(http)
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
    assert_triton_down_but_gateway_ready(http)
    assert_unavailable(http.get("/v2/models/tabular_classifier"))

    own_triton.start()  # same ports; the gateway keeps running
    deadline = time.monotonic() + 10
    while (status := http.post(PATH, json=request_body()).status_code) != 200:
        assert status == 503 and time.monotonic() < deadline
        time.sleep(0.2)
    eventually(lambda: http.get("/health/triton").status_code == 200)
    assert http.get("/health/triton").json() == {"ready_endpoints": 1, "endpoints": 1}
    assert value(http.get("/metrics").text, "gateway_triton_ready_endpoints") == 1


def test_hung_triton_under_load_fails_fast_and_keeps_serving_hits(
    own_triton: EmbeddedTriton, http: httpx.Client
) -> None:
    """Triton SIGSTOPped for 6 s while misses and hits stream: readiness answers at once
    throughout, the probe trips the breaker and misses then fail fast, hits keep coming
    from the cache, and after SIGCONT misses are served again without a restart."""
    hit_body = request_body()
    with httpx.Client(base_url=str(http.base_url), headers=AUTH, timeout=30) as cached:
        assert cached.post(PATH, json=hit_body).status_code == 200  # now in the cache
        stop = threading.Event()
        outcomes: list[tuple[str, int, float]] = []  # (kind, status, seconds)

        def stream(kind: str, client: httpx.Client, body: dict[str, object]) -> None:
            while not stop.is_set():
                started = time.monotonic()
                status = client.post(PATH, json=body).status_code
                outcomes.append((kind, status, time.monotonic() - started))

        threads = [
            threading.Thread(target=stream, args=("miss", http, request_body())),
            threading.Thread(target=stream, args=("hit", cached, hit_body)),
        ]
        for thread in threads:
            thread.start()
        assert own_triton.pid is not None
        os.kill(own_triton.pid, signal.SIGSTOP)
        readiness: list[float] = []
        try:
            hung_until = time.monotonic() + 6
            while time.monotonic() < hung_until:
                started = time.monotonic()
                http.get("/v2/health/ready")
                readiness.append(time.monotonic() - started)
                time.sleep(0.1)
            during = list(outcomes)
        finally:
            os.kill(own_triton.pid, signal.SIGCONT)
        eventually(lambda: http.post(PATH, json=request_body()).status_code == 200)
        stop.set()
        for thread in threads:
            thread.join(30)
    assert max(readiness) < 0.5, max(readiness)  # from the probe's state, not from Triton
    hits = [status for kind, status, _ in during if kind == "hit"]
    assert hits and set(hits) == {200}, Counter(hits)
    failed_misses = [took for kind, status, took in during if kind == "miss" and status == 503]
    assert len(failed_misses) >= 5
    assert sorted(failed_misses)[len(failed_misses) // 2] < 0.1  # most fail fast: breaker open


def test_stale_answers_stand_in_while_triton_cannot_answer(
    own_triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> None:
    settings = gateway_settings(
        own_triton,
        redis_server,
        triton_timeout_s=TIMEOUT_S,
        retry_after_s=RETRY_AFTER_S,
        triton_probe_s=0.25,
        cache_ttl_s=1,
        cache_stale_if_error_s=60,
    )
    store = redis.Redis.from_url(redis_server.url)

    seen, unseen = tabular_body(7.25), tabular_body(9.5)  # inputs no other test sends
    with running_gateway(settings) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        assert client.post(PATH, json=seen).headers["x-cache"] == "miss"

        def stale_in_redis() -> bool:  # past its 1 s TTL, within its 60 s grace
            keys = store.scan_iter(match="gateway:cache:tabular_classifier:1:*")
            return any(0 < store.pttl(key) <= 60_000 for key in keys)

        eventually(stale_in_redis, what="the entry turns stale")
        assert own_triton.pid is not None
        os.kill(own_triton.pid, signal.SIGSTOP)
        try:
            stale = client.post(PATH, json=seen)
            assert stale.status_code == 200 and stale.headers["x-cache"] == "stale"
            assert "stale-if-error" in stale.headers["cache-status"]
            refused = client.post(PATH, json=seen, headers={"Cache-Control": "stale-if-error=0"})
            assert_unavailable(refused)
            assert_unavailable(client.post(PATH, json=unseen))  # nothing to stand in
            metrics = client.get("/metrics").text
            assert value(metrics, "gateway_cache_lookups_total", outcome="stale") >= 1
        finally:
            os.kill(own_triton.pid, signal.SIGCONT)
        eventually(lambda: client.post(PATH, json=seen).headers["x-cache"] == "miss")


def test_a_slow_model_fails_at_its_own_deadline_and_the_others_keep_serving(
    http: httpx.Client,
) -> None:
    slow_path = "/v2/models/slow_classifier/versions/1/infer"
    for _ in range(3):
        started = time.monotonic()
        response = http.post(slow_path, json=request_body())
        elapsed = time.monotonic() - started
        assert response.status_code == 504, response.text
        assert response.json()["error"] == (
            f"Triton did not answer model 'slow_classifier' within its {SLOW_DEADLINE_S} s deadline"
        )
        assert response.headers["retry-after"] == str(RETRY_AFTER_S)
        assert SLOW_DEADLINE_S <= elapsed < 2.0  # its deadline, not Triton's 3 s batching
    assert http.post(PATH, json=request_body()).status_code == 200  # the other model serves
    assert http.get("/v2/health/ready").status_code == 200
    metrics = http.get("/metrics").text
    assert value(metrics, "gateway_triton_errors_total", model="slow_classifier", code="504") >= 3
    assert value(metrics, "gateway_degraded", dependency="triton_circuit") == 0  # still closed
    assert value(metrics, "gateway_degraded", dependency="triton") == 0

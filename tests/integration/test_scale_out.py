"""Two Tritons behind one gateway: the load spreads, a version one Triton lacks is served by
the other, a Triton killed under load fails no request and rejoins once restarted, and a
published version is loaded on both before the publish answers.

This module runs its own two Tritons (on one model repository of its own, as replicas share
a volume), so killing one or publishing does not disturb the other tests.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support import own_backends
from tests.support.data import tabular_body
from tests.support.keys import AUTH
from tests.support.metrics import value
from tests.support.polling import eventually
from tests.support.server import running_gateway
from tests.support.tritons import running_tritons, triton_urls

MODEL = "tabular_classifier"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Path:
    return own_backends.writable_copy(tmp_path_factory, model_repository, "scale-models", MODEL)


@pytest.fixture(scope="module")
def tritons(
    tmp_path_factory: pytest.TempPathFactory, repository: Path
) -> Iterator[list[EmbeddedTriton]]:
    with running_tritons(repository, tmp_path_factory, "triton", [MODEL]) as servers:
        yield servers


@pytest.fixture(scope="module")
def gateway(
    tritons: list[EmbeddedTriton], redis_server: EmbeddedRedis, repository: Path
) -> Iterator[str]:
    settings = gateway_settings(
        tritons[0],
        redis_server,
        triton_urls=triton_urls(tritons),
        triton_probe_s=0.25,
        model_repository=repository,
    )
    with running_gateway(settings) as url:
        yield url


def calls_by_triton(gateway: str, tritons: list[EmbeddedTriton]) -> list[float]:
    text = httpx.get(f"{gateway}/metrics").text
    return [
        value(text, "gateway_triton_endpoint_calls_total", endpoint=t.endpoints.http_url)
        for t in tritons
    ]


def test_misses_spread_over_both_tritons(gateway: str, tritons: list[EmbeddedTriton]) -> None:
    before = calls_by_triton(gateway, tritons)
    with httpx.Client(base_url=gateway, headers=AUTH, timeout=30) as client:
        for n in range(60):
            response = client.post(f"/v2/models/{MODEL}/infer", json=tabular_body(1000.0 + n))
            assert response.status_code == 200, response.text
    after = calls_by_triton(gateway, tritons)
    spread = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(spread) == 60 and min(spread) >= 10, spread
    endpoints = httpx.get(f"{gateway}/admin/backends", headers=AUTH).json()["triton"]
    assert [e["url"] for e in endpoints["endpoints"]] == [t.endpoints.http_url for t in tritons]
    assert all(f"{MODEL}/1" in e["ready_versions"] for e in endpoints["endpoints"])


def test_a_version_one_triton_lacks_goes_to_the_other(
    gateway: str, tritons: list[EmbeddedTriton]
) -> None:
    lacking = tritons[0]
    unloaded = httpx.post(
        f"{lacking.endpoints.http_url}/v2/repository/models/{MODEL}/unload", timeout=60
    )
    assert unloaded.status_code == 200
    try:

        def routed_away() -> bool:
            backends = httpx.get(f"{gateway}/admin/backends", headers=AUTH).json()
            (seen,) = [
                e for e in backends["triton"]["endpoints"] if e["url"] == lacking.endpoints.http_url
            ]
            return f"{MODEL}/1" not in seen["ready_versions"]

        eventually(routed_away, what="the gateway sees the version gone from one Triton")
        before = calls_by_triton(gateway, tritons)
        with httpx.Client(base_url=gateway, headers=AUTH, timeout=30) as client:
            for n in range(30):
                path = f"/v2/models/{MODEL}/versions/1/infer"
                assert client.post(path, json=tabular_body(2000.0 + n)).status_code == 200
        after = calls_by_triton(gateway, tritons)
        assert [a - b for a, b in zip(after, before, strict=True)] == [0, 30]
    finally:
        loaded = httpx.post(
            f"{lacking.endpoints.http_url}/v2/repository/models/{MODEL}/load", timeout=120
        )
        assert loaded.status_code == 200


def test_a_triton_killed_under_load_fails_no_request_and_rejoins(
    gateway: str, tritons: list[EmbeddedTriton]
) -> None:
    victim = tritons[0]
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def stream(offset: float, repeat: bool) -> None:
        with httpx.Client(base_url=gateway, headers=AUTH, timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                x = offset + (n % 5 if repeat else n)  # repeats: cache hits; else misses
                statuses[
                    client.post(f"/v2/models/{MODEL}/infer", json=tabular_body(x)).status_code
                ] += 1

    threads = [
        threading.Thread(target=stream, args=(3000.0, False)),
        threading.Thread(target=stream, args=(9000000.0, False)),
        threading.Thread(target=stream, args=(5000.0, True)),
    ]
    for thread in threads:
        thread.start()
    try:
        eventually(lambda: sum(statuses.values()) > 100)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = sum(statuses.values())
        eventually(lambda: sum(statuses.values()) > killed_at + 300, timeout_s=60)

        def ejected() -> bool:
            backends = httpx.get(f"{gateway}/admin/backends", headers=AUTH).json()
            (seen,) = [
                e for e in backends["triton"]["endpoints"] if e["url"] == victim.endpoints.http_url
            ]
            return bool(seen["circuit"] == "open" or seen["ejected_for_s"] > 0)

        eventually(ejected, what="the killed Triton is left out")
        victim.restart()  # the same ports: it rejoins as it was
        before = calls_by_triton(gateway, tritons)[0]
        eventually(
            lambda: calls_by_triton(gateway, tritons)[0] > before + 20,
            timeout_s=60,
            what="the restarted Triton takes calls again",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) > 500
    # Whether a call reached the dead Triton before its probe left it out depends on the
    # balancer's picks in that half second (a full suite once had none), so the retry of a
    # refused call is asserted where it is certain: tests/unit/test_triton_endpoints.py.


def test_a_published_version_is_ready_on_every_triton_when_publish_answers(
    gateway: str, tritons: list[EmbeddedTriton], repository: Path
) -> None:
    onnx = (repository / MODEL / "2" / "model.onnx").read_bytes()
    published = httpx.post(
        f"{gateway}/admin/models/{MODEL}/versions",
        content=onnx,
        headers={**AUTH, "Content-Type": "application/octet-stream"},
        timeout=120,
    )
    assert published.status_code == 201, published.text
    version = published.json()["version"]
    for triton in tritons:
        ready = httpx.get(f"{triton.endpoints.http_url}/v2/models/{MODEL}/versions/{version}/ready")
        assert ready.status_code == 200, triton.endpoints.http_url

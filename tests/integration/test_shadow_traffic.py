"""Shadow traffic against a real Triton and Redis: mirrored requests leave the clients'
answers unchanged and on time, are never cached, their agreement is recorded, and
`promote` judges on it.

This module's Triton serves a writable copy of `tabular_classifier` (versions 1, a logistic
regression, and 2, gradient-boosted trees); its tests run in order.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support import own_backends
from tests.support.keys import auth_headers
from tests.support.metrics import value
from tests.support.polling import eventually
from tests.support.server import running_gateway

MODEL = "tabular_classifier"
MIN_SHADOW_REQUESTS = 20


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Path:
    return own_backends.writable_copy(tmp_path_factory, model_repository, "shadow-models", MODEL)


@pytest.fixture(scope="module")
def own_triton(
    tmp_path_factory: pytest.TempPathFactory, repository: Path
) -> Iterator[EmbeddedTriton]:
    with own_backends.own_triton(repository, tmp_path_factory, "shadow-triton") as server:
        yield server


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with own_backends.own_redis(tmp_path_factory, "shadow-redis") as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    own_triton: EmbeddedTriton, own_redis: EmbeddedRedis, repository: Path
) -> Iterator[str]:
    settings = gateway_settings(
        own_triton,
        own_redis,
        model_repository=repository,
        catalog_refresh_s=0.3,
        quality_gate_min_shadow_requests=MIN_SHADOW_REQUESTS,
    )
    with running_gateway(settings) as url:
        yield url


@pytest.fixture
def client(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, headers=auth_headers(), timeout=120) as c:
        yield c


def body(seed: int) -> dict[str, object]:
    """A request no other test sends (so never a cache hit): features drawn from `seed`."""
    x = np.random.default_rng(seed).random((1, 30), dtype=np.float32) * 20
    features = {"name": "features", "shape": [1, 30], "datatype": "FP32"}
    return {"inputs": [{**features, "data": x.ravel().tolist()}]}


def slow_twin(original: bytes, rounds: int = 48) -> bytes:
    """`original` plus a chain of (256 x 1024) @ (1024 x 1024) MatMuls started from the
    batch's summed features, multiplied by 0 and added to the probabilities: the same
    answers, each call taking a while (about 0.25 s on one core) whatever its batch size."""
    model = onnx.load_model_from_string(original)
    graph = model.graph
    rng = np.random.default_rng(0)
    w_in = rng.standard_normal((30, 1024)).astype(np.float32) / 30
    w = (rng.standard_normal((1024, 1024)) / 32).astype(np.float32)
    graph.initializer.extend(
        [
            numpy_helper.from_array(w_in, "slow_in"),
            numpy_helper.from_array(w, "slow_w"),
            numpy_helper.from_array(np.array([0.0], np.float32), "slow_zero"),
            numpy_helper.from_array(np.array([0], np.int64), "slow_axes"),
            numpy_helper.from_array(np.array([256, 1024], np.int64), "slow_shape"),
        ]
    )
    probabilities = next(o for o in graph.output if o.name == "probabilities")
    producer = next(n for n in graph.node if "probabilities" in n.output)
    producer.output[list(producer.output).index("probabilities")] = "fast_probabilities"
    nodes = [
        helper.make_node("ReduceSum", ["features", "slow_axes"], ["slow_batch"], keepdims=1),
        helper.make_node("MatMul", ["slow_batch", "slow_in"], ["slow_row"]),
        helper.make_node("Expand", ["slow_row", "slow_shape"], ["slow_0"]),
    ]
    for k in range(rounds):
        nodes.append(helper.make_node("MatMul", [f"slow_{k}", "slow_w"], [f"slow_m{k}"]))
        nodes.append(helper.make_node("Tanh", [f"slow_m{k}"], [f"slow_{k + 1}"]))
    nodes += [
        helper.make_node("ReduceSum", [f"slow_{rounds}"], ["slow_sum"], keepdims=1),
        helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
        helper.make_node("Add", ["fast_probabilities", "slow_nothing"], ["probabilities"]),
    ]
    graph.node.extend(nodes)
    assert probabilities.type.tensor_type.elem_type == TensorProto.FLOAT
    return model.SerializeToString()


def publish(client: httpx.Client, data: bytes) -> str:
    published = client.post(
        f"/admin/models/{MODEL}/versions",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert published.status_code == 201, published.text
    return str(published.json()["version"])


def shadow(client: httpx.Client, version: str, percent: float = 100) -> None:
    split = client.put(
        f"/admin/models/{MODEL}/traffic",
        json={"weights": {"1": 100}, "shadow": {"version": version, "percent": percent}},
    )
    assert split.status_code == 200, split.text
    assert split.json()["traffic"]["shadow"] == {"version": version, "percent": percent}


def live(client: httpx.Client, candidate: str) -> dict[str, Any]:
    """The /admin/models figures of `candidate` against version 1 ({} before any)."""
    (model,) = [m for m in client.get("/admin/models").json()["models"] if m["name"] == MODEL]
    shadow = (model["traffic"] or {}).get("shadow") or {}
    if shadow.get("version") != candidate:
        return {}
    figures: dict[str, Any] = (shadow.get("live") or {}).get("1", {})
    return figures


def infer(client: httpx.Client, seed: int, version: str = "") -> tuple[httpx.Response, float]:
    path = f"/v2/models/{MODEL}" + (f"/versions/{version}" if version else "") + "/infer"
    started = time.perf_counter()
    response = client.post(path, json=body(seed))
    return response, time.perf_counter() - started


def mirrors(client: httpx.Client, version: str) -> dict[str, float]:
    """gateway_shadow_requests_total of `version`, by outcome."""
    return {
        outcome: metric(client, "gateway_shadow_requests_total", version=version, outcome=outcome)
        for outcome in ("compared", "shed", "failed")
    }


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    return value(client.get("/metrics").text, name, **labels)


def test_promote_needs_shadow_evidence(client: httpx.Client) -> None:
    split = client.put(f"/admin/models/{MODEL}/traffic", json={"weights": {"1": 100}})
    assert split.status_code == 200, split.text
    refused = client.post(f"/admin/models/{MODEL}/promote", json={"version": "2"})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert "0 mirrored requests" in error and f"needs {MIN_SHADOW_REQUESTS}" in error


def test_mirrored_requests_leave_answers_unchanged_and_on_time(
    client: httpx.Client, repository: Path
) -> None:
    slow = publish(client, slow_twin(version_file(repository, "1")))
    alone = [infer(client, 10_000 + n, version=slow)[1] for n in range(3)]
    expected = {n: infer(client, n, version="1")[0].json()["outputs"] for n in range(30)}
    shadow(client, slow)
    latencies = []
    for n in range(30):  # the same inputs again: answered from the cache, mirrored all the same
        response, latency = infer(client, n)
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == "1"
        assert response.json()["outputs"] == expected[n]
        latencies.append(latency)
    # Each answer came well before the shadow version could have answered its copy.
    assert statistics.median(latencies) < statistics.median(alone) / 2, (latencies, alone)

    # 30 answers came faster than the slow version answers: it got as many copies as
    # GATEWAY_SHADOW_MAX_IN_FLIGHT allows at a time, the rest were shed.
    def accounted() -> bool:
        return sum(mirrors(client, slow).values()) == 30

    eventually(accounted, 120, "every mirror compared or shed")
    counts = mirrors(client, slow)
    assert counts["compared"] >= 1 and counts["shed"] >= 1, counts
    eventually(
        lambda: live(client, slow).get("requests") == counts["compared"], 30, "figures written"
    )
    figures = live(client, slow)
    assert figures["measure"] == "agreement" and figures["mean"] == 1.0, figures
    agreed = metric(client, "gateway_shadow_label_rows_total", version=slow, result="agreed")
    assert agreed == counts["compared"]
    # never cached: the shadow version's own first answer to a mirrored input is a miss
    response, _ = infer(client, 0, version=slow)
    assert response.headers["x-cache"] == "miss"


def test_promote_is_refused_on_poor_live_agreement(client: httpx.Client) -> None:
    # Version 2 agrees with 1 on the probe set (real tumours) but on about half of these
    # out-of-range inputs only: the probe gate passes it, live traffic does not.
    shadow(client, "2")
    seed = 20_000
    while live(client, "2").get("requests", 0) < MIN_SHADOW_REQUESTS:
        assert seed < 20_400, live(client, "2")
        for _ in range(10):
            assert infer(client, seed)[0].status_code == 200
            seed += 1
        time.sleep(0.2)  # let the mirrors finish before the next round sheds them
    refused = client.post(f"/admin/models/{MODEL}/promote", json={"version": "2"})
    assert refused.status_code == 409, refused.text
    assert "on live traffic: label agreement" in refused.json()["error"]
    assert infer(client, 1)[0].json()["model_version"] == "1"


def test_promote_judges_a_good_candidate_on_live_traffic_too(
    client: httpx.Client, repository: Path
) -> None:
    twin = publish(client, version_file(repository, "1"))
    shadow(client, twin)
    seed = 30_000
    while live(client, twin).get("requests", 0) < MIN_SHADOW_REQUESTS:
        assert seed < 30_400, live(client, twin)
        for _ in range(10):
            assert infer(client, seed)[0].status_code == 200
            seed += 1
        time.sleep(0.2)
    promoted = client.post(f"/admin/models/{MODEL}/promote", json={"version": twin})
    assert promoted.status_code == 200, promoted.text
    evidence = promoted.json()["shadow"]
    assert evidence["requests"] >= MIN_SHADOW_REQUESTS and evidence["mean"] == 1.0, evidence
    assert promoted.json()["quality_gate"]["measure"] == "agreement"
    assert infer(client, 2)[0].json()["model_version"] == twin


def version_file(repository: Path, version: str) -> bytes:
    return (repository / MODEL / version / "model.onnx").read_bytes()

"""`/metrics` counters move as requests hit, miss, fail auth and get rate-limited, in one
worker and summed over two worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.support.admin import create_key
from tests.support.keys import auth_headers
from tests.support.metrics import value
from tests.support.serve import gateway_serve

MODEL = "tabular_classifier"
PATH = f"/v2/models/{MODEL}/infer"


def body(seed: int) -> dict[str, object]:
    data = np.random.default_rng(seed).random(30).astype(np.float32).tolist()
    return {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": data}]}


def exercise(url: str, seed: int) -> dict[str, int]:
    """4 misses, 4 hits, 2 missing keys, 1 malformed key, 2 rate-limited; what was sent.
    (The rate-limited key's one answer is a miss: another tenant's cache.)"""
    _, limited = create_key(url, models=["*"], rate_limit_per_second=0.1, burst=1)
    with httpx.Client(base_url=url, timeout=30) as client:
        for n in range(3):
            assert (
                client.post(PATH, json=body(seed + n), headers=auth_headers()).headers["x-cache"]
                == "miss"
            )
        for _ in range(4):
            assert (
                client.post(PATH, json=body(seed), headers=auth_headers()).headers["x-cache"]
                == "hit"
            )
        for _ in range(2):
            assert client.post(PATH, json=body(seed)).status_code == 401
        assert (
            client.post(PATH, json=body(seed), headers={"X-API-Key": "gwk_bad"}).status_code == 401
        )
        statuses = [
            client.post(
                PATH, json=body(seed), headers={"Authorization": f"Bearer {limited}"}
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 429, 429]
    return {"miss": 4, "hit": 4, "missing": 2, "malformed": 1, "rate_limited": 2}


def snapshot(url: str) -> Callable[[], dict[str, float]]:
    def read() -> dict[str, float]:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        return {
            "miss": value(text, "gateway_cache_lookups_total", model=MODEL, outcome="miss"),
            "hit": value(text, "gateway_cache_lookups_total", model=MODEL, outcome="hit"),
            "missing": value(text, "gateway_auth_failures_total", reason="missing"),
            "malformed": value(text, "gateway_auth_failures_total", reason="malformed"),
            "rate_limited": value(text, "gateway_rate_limited_total"),
            "requests_200": value(
                text, "gateway_inference_requests_total", model=MODEL, status="200"
            ),
            "requests_401": value(text, "gateway_http_requests_total", status="401"),
            "latency_count": value(text, "gateway_inference_duration_seconds_count", model=MODEL),
            "triton_calls": value(
                text, "gateway_triton_request_duration_seconds_count", model=MODEL
            ),
            "triton_seconds": value(
                text, "gateway_triton_request_duration_seconds_sum", model=MODEL
            ),
            "triton_seconds_saved": value(
                text, "gateway_cache_triton_seconds_saved_total", model=MODEL
            ),
        }

    return read


def check(before: dict[str, float], after: dict[str, float], sent: dict[str, int]) -> None:
    moved = {name: after[name] - before[name] for name in after}
    for name, count in sent.items():
        assert moved[name] == count, (name, moved)
    assert moved["requests_200"] == sent["miss"] + sent["hit"]
    assert moved["requests_401"] >= sent["missing"] + sent["malformed"]
    assert moved["latency_count"] >= sent["miss"] + sent["hit"] + sent["rate_limited"]
    assert moved["triton_calls"] == sent["miss"]
    # every hit saved the Triton time its entry's miss took: 4 hits of the misses' answers
    per_miss = moved["triton_seconds"] / sent["miss"]
    assert 0 < moved["triton_seconds_saved"] <= 4 * per_miss * sent["miss"]


def test_counters_move_in_one_worker(gateway_url: str) -> None:
    read = snapshot(gateway_url)
    before = read()
    sent = exercise(gateway_url, seed=1000)
    check(before, read(), sent)


@pytest.fixture
def two_workers(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[str]:
    with gateway_serve(triton, redis_server, tmp_path) as served:
        yield served.url


def test_counters_are_summed_over_two_workers(two_workers: str, tmp_path: Path) -> None:
    read = snapshot(two_workers)
    before = read()
    sent = exercise(two_workers, seed=2000)
    after = read()
    check(before, after, sent)
    for _ in range(5):  # whichever worker answers /metrics, the totals are the same
        assert read() == after
    assert len(list((tmp_path / "metrics").glob("*.db"))) >= 2  # files of both workers

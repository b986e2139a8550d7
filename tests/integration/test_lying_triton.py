"""A Triton that answers wrongly (a corrupting proxy in front of a real Triton): every
unusable answer is a 502 naming the problem, counted as that Triton's failure, and never
cached: once Triton answers rightly again, the same request is a miss with the right answer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.admin import create_key
from tests.support.corrupting_proxy import CORRUPTIONS, CorruptingProxy
from tests.support.metrics import value
from tests.support.server import running_gateway
from tests.support.tabular import MODEL, body

REASONS = {
    "model name": "it names model 'someone_else'",
    "shape": "has shape",
    "datatype": "is INT32; the model's is FP32",
    "extra output": "output 'extra' is not one of the model's",
    "sizes": "its shape needs",
    "garbage": "could not be read",
    "huge": "is over 1000000 bytes",
}


@pytest.fixture(scope="module")
def proxy(triton: EmbeddedTriton) -> Iterator[CorruptingProxy]:
    server = CorruptingProxy(triton.endpoints.http_url).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    proxy: CorruptingProxy, triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> Iterator[str]:
    settings = gateway_settings(
        triton,
        redis_server,
        triton_url=proxy.url,
        triton_metrics_port=int(httpx.URL(triton.endpoints.metrics_url).port or 0),
        triton_max_answer_bytes=1_000_000,
        triton_breaker_failures=100,  # the answers are judged here, not the breaker's timing
    )
    with running_gateway(settings) as url:
        yield url


def triton_failures(client: httpx.Client) -> float:
    return value(client.get("/metrics").text, "gateway_triton_errors_total", code="502")


@pytest.mark.parametrize("corruption", [*CORRUPTIONS, "garbage", "huge"])
def test_an_unusable_answer_is_a_502_and_never_cached(
    gateway: str, proxy: CorruptingProxy, triton: EmbeddedTriton, corruption: str
) -> None:
    _, key = create_key(gateway, models=["*"])
    row = body(seed=hash(corruption) % 10_000)
    path = f"/v2/models/{MODEL}/versions/2/infer"
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=60) as client:
        failures_before = triton_failures(client)
        proxy.corruption = corruption
        try:
            lied = client.post(path, json=row)
        finally:
            proxy.corruption = None
        assert lied.status_code == 502, lied.text[:300]
        assert REASONS[corruption] in lied.json()["error"], lied.text[:300]
        assert triton_failures(client) == failures_before + 1

        honest = client.post(path, json=row)
        assert honest.status_code == 200 and honest.headers["x-cache"] == "miss", honest.text[:300]
        direct = httpx.post(f"{triton.endpoints.http_url}{path}", json=row, timeout=60).json()
        for got, want in zip(honest.json()["outputs"], direct["outputs"], strict=True):
            assert got["name"] == want["name"] and got["shape"] == want["shape"]
            assert got["data"] == pytest.approx(want["data"], rel=1e-6)  # FP32, printed shorter
        again = client.post(path, json=row)
        assert again.headers["x-cache"] == "hit" and again.json() == honest.json()

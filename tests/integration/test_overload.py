"""Over GATEWAY_MAX_IN_FLIGHT, requests are shed at once with 503 and Retry-After."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.admin import create_key
from tests.support.metrics import value
from tests.support.server import running_gateway


def test_excess_requests_are_shed_with_retry_after(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> None:
    # Keys remembered for the whole test: on a busy machine a key store lookup past its
    # Redis timeout would be a 503 of its own (the key store's, not the worker's).
    settings = gateway_settings(
        triton, redis_server, max_in_flight=2, retry_after_s=2, auth_remember_s=300
    )
    with running_gateway(settings) as url:
        # A key per request: one key alone holds at most half the worker (429 past it).
        keys = [create_key(url, name=f"client {n}", models=["*"])[1] for n in range(33)]
        for key in keys:  # each looked up once, before the burst
            answer = httpx.get(
                f"{url}/v2/models/text_embedding", headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 200, answer.text

        def embed(n: int) -> httpx.Response:
            body = {
                "inputs": [
                    {
                        "name": "text",
                        "shape": [1, 1],
                        "datatype": "BYTES",
                        "data": [f"text {n} " * 40],
                    }
                ]
            }
            headers = {"Authorization": f"Bearer {keys[n % 33]}", "Cache-Control": "no-store"}
            return httpx.post(
                f"{url}/v2/models/text_embedding/infer", json=body, headers=headers, timeout=60
            )

        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(embed, range(32)))
        statuses = [r.status_code for r in responses]
        shed = [r for r in responses if r.status_code == 503]
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 2 and shed, statuses
        assert all(
            r.headers["retry-after"] == "2" and "capacity" in r.json()["error"] for r in shed
        ), [r.text for r in shed]
        text = httpx.get(f"{url}/metrics").text
        assert value(text, "gateway_shed_requests_total") == len(shed)
        assert embed(99).status_code == 200  # capacity is back

"""Clients that misbehave, with an ordinary key, cost at most their own requests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.admin import create_key
from tests.support.metrics import value

TABULAR = {
    "inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}]
}


def test_made_up_model_names_do_not_grow_metrics(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["*"])
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway_url, headers=headers, timeout=30) as client:

        def unknown(n: int) -> int:
            return client.post(f"/v2/models/made_up_{n}/infer", json=TABULAR).status_code

        assert {unknown(n) for n in range(20)} == {404}  # every label set exists now
        before = len(client.get("/metrics").content)
        with ThreadPoolExecutor(8) as pool:
            statuses = set(pool.map(unknown, range(20, 10_020)))
        after = client.get("/metrics").text
    assert statuses == {404}
    assert "made_up" not in after
    assert len(after) - before < 2_000, len(after) - before  # counter digits, not label sets


def test_very_long_names_are_refused_before_any_backend(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["*"])
    headers = {"Authorization": f"Bearer {key}"}
    long_name = "m" * 9_000
    for path in (
        f"/v2/models/{long_name}/infer",
        f"/v2/models/{long_name}",
        f"/v2/models/{long_name}/config",
        f"/v2/models/tabular_classifier/versions/{'9' * 30}/infer",
        "/v2/models/tabular_classifier/versions/latest",
    ):
        method = "POST" if path.endswith("/infer") else "GET"
        response = httpx.request(method, f"{gateway_url}{path}", json=TABULAR, headers=headers)
        assert response.status_code == 400, (path[:60], response.text[:200])
        assert len(response.json()["error"]) < 200
    metrics = httpx.get(f"{gateway_url}/metrics").text
    assert value(metrics, "gateway_degraded", dependency="triton") == 0
    ready = httpx.get(f"{gateway_url}/v2/health/ready")
    assert ready.status_code == 200

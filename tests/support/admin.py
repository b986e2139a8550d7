"""Creating keys through the gateway's admin API, as an operator would."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.data import samples
from tests.support.keys import auth_headers


def create_key(gateway_url: str, **body: Any) -> tuple[str, str]:
    """POST /admin/keys with the admin key; return (id, key)."""
    body.setdefault("name", "test key")
    response = httpx.post(f"{gateway_url}/admin/keys", json=body, headers=auth_headers())
    assert response.status_code == 201, response.text
    document = response.json()
    return document["id"], document["key"]


def infer_tabular(gateway_url: str, headers: dict[str, str]) -> httpx.Response:
    x = samples("tabular_classifier", rows=1)
    tensor = {"name": "features", "shape": [1, 30], "datatype": "FP32", "data": x.ravel().tolist()}
    return httpx.post(
        f"{gateway_url}/v2/models/tabular_classifier/infer",
        json={"inputs": [tensor]},
        headers=headers,
        timeout=30,
    )

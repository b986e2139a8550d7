"""Bad requests get a 4xx whose `{"error": ...}` names the problem; nothing crashes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.data import samples
from tests.support.keys import AUTH


@pytest.fixture(scope="module")
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, headers=AUTH, timeout=30) as client:
        yield client


def tabular_request(**changes: Any) -> dict[str, Any]:
    x = samples("tabular_classifier", rows=1)
    tensor = {"name": "features", "shape": [1, 30], "datatype": "FP32", "data": x.ravel().tolist()}
    tensor.update(changes)
    return {"inputs": [tensor]}


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    message: str = body["error"]
    return message


def test_unknown_model_is_404(http: httpx.Client) -> None:
    message = error_of(http.post("/v2/models/no_such_model/infer", json=tabular_request()), 404)
    assert "no_such_model" in message


def test_unknown_model_is_404_before_its_body_is_read(http: httpx.Client) -> None:
    for body in (b"{not json", b'{"inputs": []}'):
        response = http.post("/v2/models/no_such_model/infer", content=body)
        assert "no_such_model" in error_of(response, 404)
    bad_for_a_known_model = http.post("/v2/models/tabular_classifier/infer", content=b"{not")
    error_of(bad_for_a_known_model, 400)
    not_gzip = {"Content-Encoding": "gzip"}
    response = http.post("/v2/models/no_such_model/infer", content=b"not gzip", headers=not_gzip)
    assert "no_such_model" in error_of(response, 404)
    known = http.post("/v2/models/tabular_classifier/infer", content=b"x", headers=not_gzip)
    assert "gzip" in error_of(known, 400)


def test_version_zero_is_400_not_404(http: httpx.Client) -> None:
    response = http.post("/v2/models/tabular_classifier/versions/0/infer", json=tabular_request())
    assert "positive integer" in error_of(response, 400)


def test_unknown_version_is_404(http: httpx.Client) -> None:
    response = http.post("/v2/models/tabular_classifier/versions/9/infer", json=tabular_request())
    assert "version 9" in error_of(response, 404)
    assert error_of(http.get("/v2/models/tabular_classifier/versions/9"), 404)
    assert error_of(http.get("/v2/models/no_such_model/config"), 404)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"name": "wrong_input"}, ["wrong_input"]),
        ({"shape": [1, 29], "data": [0.0] * 29}, ["features", "shape"]),
        ({"datatype": "FP64"}, ["features", "FP64"]),
        ({"shape": [1, 30], "data": [0.0] * 12}, ["features", "30", "12"]),
        ({"datatype": "INT32", "data": [0.5] * 30}, ["features", "INT32"]),
        ({"datatype": "FLOAT"}, ["features", "datatype"]),
        ({"shape": [1, -30]}, ["features", "shape"]),
        ({"data": None, "parameters": {"binary_data_size": 7}}, ["features", "binary_data_size"]),
    ],
)
def test_bad_input_is_400_naming_the_input(
    http: httpx.Client, changes: dict[str, Any], words: list[str]
) -> None:
    message = error_of(
        http.post("/v2/models/tabular_classifier/infer", json=tabular_request(**changes)), 400
    )
    for word in words:
        assert word in message


def test_malformed_bodies_are_400(http: httpx.Client) -> None:
    path = "/v2/models/tabular_classifier/infer"
    assert "JSON" in error_of(http.post(path, content=b"{not json"), 400)
    assert "inputs" in error_of(http.post(path, json={"inputs": []}), 400)
    assert "JSON object" in error_of(http.post(path, json=[1, 2]), 400)
    headers = {"Inference-Header-Content-Length": "5000"}
    assert "Inference-Header-Content-Length" in error_of(
        http.post(path, content=b"{}", headers=headers), 400
    )


def test_binary_size_mismatch_is_400(http: httpx.Client) -> None:
    x = samples("tabular_classifier", rows=1)
    header = (
        b'{"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32",'
        b'"parameters":{"binary_data_size":116}}]}'
    )
    body = header + x.tobytes()[:116]
    response = http.post(
        "/v2/models/tabular_classifier/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    message = error_of(response, 400)
    assert "features" in message and "120" in message


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    big = np.zeros((9000, 30), dtype=np.float32)  # ~1.1 MB of binary data, limit is 1 MB
    header = (
        b'{"inputs":[{"name":"features","shape":[9000,30],"datatype":"FP32",'
        b'"parameters":{"binary_data_size":1080000}}]}'
    )
    headers = {"Inference-Header-Content-Length": str(len(header))}
    response = http.post(
        "/v2/models/tabular_classifier/infer", content=header + big.tobytes(), headers=headers
    )
    assert "limit" in error_of(response, 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield header
        for _ in range(9):
            yield big[:1000].tobytes()

    response = http.post("/v2/models/tabular_classifier/infer", content=chunks(), headers=headers)
    assert "limit" in error_of(response, 413)


def test_wrong_method_on_infer_is_405(http: httpx.Client) -> None:
    assert "POST" in error_of(http.get("/v2/models/tabular_classifier/infer"), 405)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/repository/index"),
        ("POST", "/v2/repository/models/tabular_classifier/unload"),
        ("GET", "/v2/systemsharedmemory/status"),
        ("GET", "/v2/cudasharedmemory/status"),
        ("GET", "/v2/trace/setting"),
        ("GET", "/v2/logging"),
        ("GET", "/v2/models/tabular_classifier/versions/1/unknown"),
        ("GET", "/v2/models/tabular_classifier/trace/setting"),
    ],
)
def test_tritons_admin_endpoints_are_not_exposed(
    http: httpx.Client, method: str, path: str
) -> None:
    error_of(http.request(method, path), 404)


def test_shared_memory_inputs_are_refused(http: httpx.Client) -> None:
    request = tabular_request(
        data=None, parameters={"shared_memory_region": "r", "shared_memory_byte_size": 120}
    )
    assert "shared memory" in error_of(
        http.post("/v2/models/tabular_classifier/infer", json=request), 400
    )

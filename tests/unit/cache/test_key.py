"""The cache key covers exactly what decides an answer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import orjson

from gateway.cache import cache_key, memo_key
from gateway.protocol import RequestedOutput, decode_infer_request
from gateway.protocol.types import InferRequest

# tenant, model, requested version, version, fingerprint, header length, body
MemoParts = tuple[str, str, str, str, str, int | None, bytes]
X = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)


def json_request(**document: Any) -> InferRequest:
    document.setdefault(
        "inputs", [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": X.ravel().tolist()}]
    )
    return decode_infer_request("m", "", orjson.dumps(document), None)


def binary_request(
    datatype: str = "FP32", shape: tuple[int, ...] = (1, 4), **extra: Any
) -> InferRequest:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": 16},
                }
            ],
            **extra,
        }
    )
    return decode_infer_request("m", "", header + X.tobytes(), len(header))


def key(
    request: InferRequest, version: str = "1", fingerprint: str = "f", tenant: str = ""
) -> bytes:
    return cache_key(request, version, fingerprint, tenant)


def test_json_and_binary_requests_of_the_same_tensors_share_a_key() -> None:
    assert key(json_request()) == key(binary_request())


def test_same_bytes_under_another_datatype_or_shape_do_not() -> None:
    base = key(binary_request())
    assert key(binary_request(datatype="INT32")) != base
    assert key(binary_request(shape=(2, 2))) != base
    assert key(binary_request(shape=(4, 1))) != base


def test_version_fingerprint_and_tenant_are_part_of_it() -> None:
    request = json_request()
    base = key(request)
    assert key(request, version="2") != base
    assert key(request, fingerprint="g") != base
    assert key(request, tenant="team-a") != base


def test_id_binary_flags_and_scheduling_parameters_are_not() -> None:
    base = key(json_request())
    assert key(json_request(id="abc")) == base
    assert key(json_request(parameters={"binary_data_output": True})) == base
    assert key(json_request(parameters={"priority": 1, "timeout": 5000})) == base
    binary_output = json_request(outputs=[{"name": "y", "parameters": {"binary_data": True}}])
    json_output = json_request(outputs=[{"name": "y"}])
    assert key(binary_output) == key(json_output)


def test_requested_outputs_classification_and_other_parameters_are() -> None:
    base = key(json_request())
    assert key(json_request(outputs=[{"name": "y"}])) != base
    assert key(json_request(outputs=[{"name": "y", "parameters": {"classification": 3}}])) != key(
        json_request(outputs=[{"name": "y"}])
    )
    assert key(json_request(parameters={"temperature": 0.5})) != base
    assert key(json_request(parameters={"flag": True})) != key(json_request(parameters={"flag": 1}))
    assert key(json_request(parameters={"flag": "1"})) != key(json_request(parameters={"flag": 1}))


def test_order_of_inputs_and_outputs_does_not_matter() -> None:
    request = json_request()
    second = replace(request.inputs[0], name="z")
    a = replace(
        request,
        inputs=(request.inputs[0], second),
        outputs=(RequestedOutput("p"), RequestedOutput("q")),
    )
    b = replace(
        request,
        inputs=(second, request.inputs[0]),
        outputs=(RequestedOutput("q"), RequestedOutput("p")),
    )
    assert key(a) == key(b)


def test_fields_cannot_bleed_into_each_other() -> None:
    a = replace(json_request(), model="ab")
    b = replace(json_request(), model="a")
    assert cache_key(a, "1", "f") != cache_key(b, "b1", "f")


def test_memo_keys_differ_whenever_any_part_does_and_parts_cannot_shift() -> None:
    base: MemoParts = ("tenant", "model", "", "1", "fp", 10, b"body")
    variants: list[MemoParts] = [
        ("tenant2", "model", "", "1", "fp", 10, b"body"),
        ("tenant", "model2", "", "1", "fp", 10, b"body"),
        ("tenant", "model", "1", "1", "fp", 10, b"body"),
        ("tenant", "model", "", "2", "fp", 10, b"body"),
        ("tenant", "model", "", "1", "fp2", 10, b"body"),
        ("tenant", "model", "", "1", "fp", None, b"body"),
        ("tenant", "model", "", "1", "fp", 10, b"body2"),
        ("tenan", "tmodel", "", "1", "fp", 10, b"body"),  # the same bytes, split elsewhere
        ("tenant", "model", "", "1", "fp1", 0, b"body"),
    ]
    keys = {memo_key(*parts) for parts in [base, *variants]}
    assert len(keys) == 1 + len(variants)
    assert memo_key(*base) == memo_key(*base)

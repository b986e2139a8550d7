"""Decoding v2 requests: JSON and binary forms, and the errors that name the problem."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.errors import BadRequest
from gateway.protocol import RequestedOutput, decode_infer_request
from gateway.protocol.datatypes import decode_bytes_elements


def decode(document: dict[str, Any]) -> Any:
    return decode_infer_request("m", "", orjson.dumps(document), None)


def binary_body(inputs: list[tuple[dict[str, Any], bytes]], **extra: Any) -> tuple[bytes, int]:
    header_inputs = []
    for tensor, data in inputs:
        tensor = dict(tensor)
        tensor.setdefault("parameters", {})["binary_data_size"] = len(data)
        header_inputs.append(tensor)
    header = orjson.dumps({"inputs": header_inputs, **extra})
    return header + b"".join(data for _, data in inputs), len(header)


def test_json_and_binary_forms_decode_to_the_same_tensor() -> None:
    x = np.array([[1.5, -2.25, 3.0]], dtype=np.float32)
    from_json = decode(
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": x.ravel().tolist()}]}
    )
    body, length = binary_body([({"name": "x", "shape": [1, 3], "datatype": "FP32"}, x.tobytes())])
    from_binary = decode_infer_request("m", "", body, length)
    assert from_json.inputs == from_binary.inputs
    assert from_json.inputs[0].data == x.astype("<f4").tobytes()


def test_nested_json_data_is_accepted_in_row_major_order() -> None:
    request = decode(
        {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], [3, 4]]}]}
    )
    assert np.frombuffer(request.inputs[0].data, "<i4").tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("BOOL", [True, False], b"\x01\x00"),
        ("UINT8", [0, 255], b"\x00\xff"),
        ("INT64", [-1], struct.pack("<q", -1)),
        ("FP64", [0.1], struct.pack("<d", 0.1)),
        ("FP16", [1.0], np.array([1.0], "<f2").tobytes()),
        ("UINT64", [2**64 - 1], struct.pack("<Q", 2**64 - 1)),
    ],
)
def test_json_numbers_become_little_endian_bytes(
    datatype: str, data: list[Any], expected: bytes
) -> None:
    request = decode(
        {"inputs": [{"name": "x", "shape": [len(data)], "datatype": datatype, "data": data}]}
    )
    assert request.inputs[0].data == expected


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("shape", [[12], [3, 4], [1, 12]])
def test_float_lists_decode_exactly_as_numpy_converts_them(datatype: str, shape: list[int]) -> None:
    """Lists of floats are packed without numpy (the common small request): the bytes must
    be numpy's, value for value, including the edges of float32's range."""
    rng = np.random.default_rng(7)
    edges = [0.1, -0.0, 5e-324, 1.4e-45, 7e-46, 3.4028234e38, -3.4028235e38, 1e-40, 2.0**-149]
    little_endian = {"FP32": "<f4", "FP64": "<f8"}[datatype]
    for _ in range(200):
        values = rng.choice([*edges, *rng.normal(0, 1e3, 8), *rng.uniform(-1e38, 1e38, 4)], 12)
        flat = [float(v) for v in values]
        width = shape[-1]
        rows = [flat[start : start + width] for start in range(0, 12, width)]
        data = flat if len(shape) == 1 else rows
        request = decode(
            {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}
        )
        assert request.inputs[0].data == np.asarray(flat).astype(little_endian).tobytes()


def test_bytes_tensors_use_tritons_length_prefixed_form_in_both_encodings() -> None:
    texts = ["héllo", "", "日本"]
    from_json = decode(
        {"inputs": [{"name": "t", "shape": [3], "datatype": "BYTES", "data": texts}]}
    )
    assert decode_bytes_elements(from_json.inputs[0].data) == [t.encode() for t in texts]
    raw = from_json.inputs[0].data
    body, length = binary_body([({"name": "t", "shape": [3], "datatype": "BYTES"}, raw)])
    assert decode_infer_request("m", "", body, length).inputs == from_json.inputs


def test_several_binary_inputs_are_sliced_in_order() -> None:
    a = np.arange(4, dtype="<i4").tobytes()
    b = np.arange(2, dtype="<f8").tobytes()
    body, length = binary_body(
        [
            ({"name": "a", "shape": [4], "datatype": "INT32"}, a),
            ({"name": "b", "shape": [2], "datatype": "FP64"}, b),
        ]
    )
    request = decode_infer_request("m", "1", body, length)
    assert [t.data for t in request.inputs] == [a, b]
    assert request.version == "1"


def test_outputs_parameters_and_id() -> None:
    request = decode(
        {
            "id": "r-1",
            "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
            "outputs": [
                {"name": "p", "parameters": {"binary_data": True}},
                {"name": "c", "parameters": {"classification": 3}},
                {"name": "j"},
            ],
            "parameters": {"binary_data_output": True, "priority": 2, "note": "x"},
        }
    )
    assert request.id == "r-1"
    assert request.outputs == (
        RequestedOutput("p", True, 0),
        RequestedOutput("c", None, 3),
        RequestedOutput("j", None, 0),
    )
    assert request.binary_output is True
    assert request.parameters == {"priority": 2, "note": "x"}
    assert request.wants_binary("p") and request.wants_binary("j")


ONE = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"inputs": []}, ["inputs"]),
        ({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}, ["inputs[0]", "name"]),
        ({"inputs": [ONE, ONE]}, ["'x'", "twice"]),
        ({"inputs": [{**ONE, "datatype": "FLOAT32"}]}, ["'x'", "FLOAT32"]),
        ({"inputs": [{**ONE, "shape": [2.0]}]}, ["'x'", "shape"]),
        ({"inputs": [{**ONE, "shape": [True]}]}, ["'x'", "shape"]),
        ({"inputs": [{**ONE, "data": [1, 2, 3]}]}, ["'x'", "2 elements", "3"]),
        ({"inputs": [{**ONE, "data": [[1], [2, 3]]}]}, ["'x'", "regular"]),
        ({"inputs": [{**ONE, "data": ["a", "b"]}]}, ["'x'", "FP32"]),
        ({"inputs": [{**ONE, "datatype": "INT8", "data": [1, 300]}]}, ["'x'", "out of range"]),
        ({"inputs": [{**ONE, "datatype": "INT8", "data": [1.5, 2]}]}, ["'x'", "INT8"]),
        ({"inputs": [{**ONE, "data": [1, 3.5e38]}]}, ["'x'", "out of range", "FP32"]),
        ({"inputs": [{**ONE, "data": [1.0, 3.5e38]}]}, ["'x'", "out of range", "FP32"]),
        ({"inputs": [{**ONE, "data": [[1.0], [2.0, 3.0]]}]}, ["'x'", "regular"]),
        ({"inputs": [{**ONE, "data": [1.0, 2.0, 3.0]}]}, ["'x'", "2 elements", "3"]),
        ({"inputs": [{**ONE, "datatype": "FP16", "data": [70000, 1]}]}, ["'x'", "FP16"]),
        ({"inputs": [{**ONE, "datatype": "BOOL", "data": [1, 0]}]}, ["'x'", "BOOL"]),
        ({"inputs": [{**ONE, "datatype": "BYTES", "data": [1, 2]}]}, ["'x'", "strings"]),
        ({"inputs": [{**ONE, "datatype": "BF16"}]}, ["'x'", "BF16", "binary"]),
        ({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32"}]}, ["'x'", "data"]),
        (
            {"inputs": [ONE], "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]},
            ["'y'", "binary_data"],
        ),
        (
            {"inputs": [ONE], "outputs": [{"name": "y", "parameters": {"classification": -1}}]},
            ["'y'", "classification"],
        ),
        ({"inputs": [ONE], "outputs": [{"name": "y"}, {"name": "y"}]}, ["'y'", "twice"]),
        ({"inputs": [ONE], "parameters": {"binary_data_output": "yes"}}, ["binary_data_output"]),
        ({"inputs": [ONE], "parameters": {"p": [1]}}, ["'p'"]),
        ({"inputs": [ONE], "id": 7}, ["'id'"]),
    ],
)
def test_malformed_requests_are_bad_requests_naming_the_problem(
    document: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(BadRequest) as caught:
        decode(document)
    for word in words:
        assert word in caught.value.message


def test_binary_framing_errors() -> None:
    x = np.zeros(3, "<f4").tobytes()
    body, length = binary_body([({"name": "x", "shape": [4], "datatype": "FP32"}, x)])
    with pytest.raises(BadRequest, match=r"'x'.*16 bytes, got 12"):
        decode_infer_request("m", "", body, length)
    body, length = binary_body([({"name": "x", "shape": [3], "datatype": "FP32"}, x)])
    with pytest.raises(BadRequest, match="1 bytes of binary data belong to no input"):
        decode_infer_request("m", "", body + b"\x00", length)
    with pytest.raises(BadRequest, match="Inference-Header-Content-Length"):
        decode_infer_request("m", "", body, len(body) + 1)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    )
    with pytest.raises(BadRequest, match="past the end"):
        decode_infer_request("m", "", header + b"\x00" * 4, len(header))
    broken = struct.pack("<I", 10) + b"abc"
    body, length = binary_body([({"name": "t", "shape": [1], "datatype": "BYTES"}, broken)])
    with pytest.raises(BadRequest, match=r"'t'.*malformed BYTES"):
        decode_infer_request("m", "", body, length)


def test_invalid_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        decode_infer_request("m", "", b"{", None)

"""Encoding results: JSON or binary per output, as the request asked."""

from __future__ import annotations

import json

import numpy as np

from gateway.protocol import (
    InferRequest,
    InferResult,
    RequestedOutput,
    Tensor,
    encode_infer_response,
)
from gateway.protocol.datatypes import encode_bytes_elements

PROBABILITIES = np.array([[0.1, 0.7, 0.2]], dtype=np.float32)
RESULT = InferResult(
    "m",
    "2",
    (
        Tensor("probabilities", "FP32", (1, 3), PROBABILITIES.tobytes()),
        Tensor("label", "INT64", (1, 1), np.array([[1]], "<i8").tobytes()),
        Tensor("text", "BYTES", (2,), encode_bytes_elements([b"ok", "é".encode()])),
    ),
)
INPUT = Tensor("x", "FP32", (1,), b"\x00" * 4)


def test_json_response_round_trips_float32_exactly() -> None:
    request = InferRequest("m", "", (INPUT,), id="abc")
    encoded = encode_infer_response(request, RESULT)
    assert encoded.content_type == b"application/json" and encoded.header_length is None
    document = json.loads(encoded.body)
    assert (
        document["id"] == "abc"
        and document["model_name"] == "m"
        and document["model_version"] == "2"
    )
    probabilities, label, text = document["outputs"]
    assert probabilities["shape"] == [1, 3]
    np.testing.assert_array_equal(
        np.array(probabilities["data"], np.float32), PROBABILITIES.ravel()
    )
    assert label["data"] == [1] and label["datatype"] == "INT64"
    assert text["data"] == ["ok", "é"]


def test_binary_outputs_follow_the_json_header() -> None:
    request = InferRequest("m", "", (INPUT,), outputs=(RequestedOutput("probabilities", True),))
    encoded = encode_infer_response(request, RESULT)
    assert encoded.content_type == b"application/octet-stream"
    assert encoded.header_length is not None
    header = json.loads(encoded.body[: encoded.header_length])
    assert "id" not in header
    probabilities = header["outputs"][0]
    assert probabilities["parameters"] == {"binary_data_size": 12}
    assert "data" not in probabilities and "data" in header["outputs"][1]
    assert encoded.body[encoded.header_length :] == PROBABILITIES.tobytes()


def test_binary_data_output_makes_every_output_binary_unless_it_says_otherwise() -> None:
    request = InferRequest(
        "m", "", (INPUT,), outputs=(RequestedOutput("label", False),), binary_output=True
    )
    encoded = encode_infer_response(request, RESULT)
    assert encoded.header_length is not None
    header = json.loads(encoded.body[: encoded.header_length])
    kinds = {o["name"]: ("data" in o) for o in header["outputs"]}
    assert kinds == {"probabilities": False, "label": True, "text": False}
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"] if "parameters" in o]
    assert len(encoded.body) == encoded.header_length + sum(sizes)

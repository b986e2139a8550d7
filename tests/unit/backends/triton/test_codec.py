"""How inference requests and responses cross to Triton: binary tensor data both ways."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from gateway.backends.triton.codec import decode_response, encode_request
from gateway.errors import GatewayError
from gateway.protocol.types import InferRequest, RequestedOutput, Tensor

X = np.arange(6, dtype="<f4").reshape(2, 3)


def test_request_carries_raw_inputs_and_asks_for_binary_outputs() -> None:
    request = InferRequest(
        "m",
        "1",
        (Tensor("x", "FP32", (2, 3), X.tobytes()),),
        outputs=(RequestedOutput("p", False, 0), RequestedOutput("c", None, 2)),
        id="r1",
        parameters={"priority": 1},
    )
    header, payload = encode_request(request)
    document = orjson.loads(header)
    assert payload == X.tobytes()
    assert document["id"] == "r1"
    assert document["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 24}}
    ]
    assert document["outputs"] == [
        {"name": "p", "parameters": {"binary_data": True}},
        {"name": "c", "parameters": {"binary_data": True, "classification": 2}},
    ]
    assert document["parameters"] == {"priority": 1, "binary_data_output": True}


def test_response_outputs_are_sliced_from_the_binary_part() -> None:
    probabilities = np.array([[0.25, 0.75]], dtype="<f4").tobytes()
    label = np.array([[1]], dtype="<i8").tobytes()
    header = orjson.dumps(
        {
            "model_name": "m",
            "model_version": "2",
            "outputs": [
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [1, 2],
                    "parameters": {"binary_data_size": 8},
                },
                {
                    "name": "label",
                    "datatype": "INT64",
                    "shape": [1, 1],
                    "parameters": {"binary_data_size": 8},
                },
            ],
        }
    )
    result = decode_response("m", header + probabilities + label, b"%d" % len(header), 0.0)
    assert result.version == "2"
    assert [(t.name, t.shape, t.data) for t in result.outputs] == [
        ("probabilities", (1, 2), probabilities),
        ("label", (1, 1), label),
    ]


def test_a_response_without_binary_data_is_an_error() -> None:
    header = orjson.dumps(
        {
            "model_version": "1",
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [1], "data": [1.0]}],
        }
    )
    with pytest.raises(GatewayError, match="could not be read"):
        decode_response("m", header, None, 0.0)

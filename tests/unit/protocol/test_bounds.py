"""A model's input bounds, from its configuration, checked before values are parsed."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import BadRequest
from gateway.protocol import decode_infer_request
from gateway.protocol.bounds import bounds_of

TABULAR = {
    "max_batch_size": 64,
    "input": [{"name": "features", "data_type": "TYPE_FP32", "dims": [30]}],
}
TEXT = {
    "max_batch_size": 64,
    "input": [{"name": "text", "data_type": "TYPE_STRING", "dims": ["1"]}],
}
VARIABLE = {
    "max_batch_size": 8,
    "input": [{"name": "ids", "data_type": "TYPE_INT64", "dims": [-1]}],
}


def body(name: str, datatype: str, shape: list[int], data: list[object]) -> bytes:
    return orjson.dumps(
        {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}
    )


def test_fixed_dims_bound_every_input_and_the_whole_json() -> None:
    bounds = bounds_of("tabular", TABULAR)
    assert bounds.per_input == {"features": 64 * 30} and bounds.json_values == 1920
    assert bounds_of("text", TEXT).per_input == {"text": 64}
    assert bounds_of("text", TEXT).json_values == 64 and bounds_of("text", TEXT).takes_text
    assert bounds_of("m", VARIABLE).per_input == {} and bounds_of("m", VARIABLE).json_values is None
    no_batch = {
        "max_batch_size": 0,
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [2, 3]}],
    }
    assert bounds_of("m", no_batch).per_input == {"x": 6}
    assert bounds_of("m", {}).json_values is None  # no configuration known: nothing bounded


def test_a_json_with_more_values_than_the_model_takes_is_refused_unparsed() -> None:
    bounds = bounds_of("tabular", TABULAR)
    flood = (
        b'{"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":['
        + b"0," * 100_000
        + b"0]}]}"
    )
    with pytest.raises(BadRequest, match=r"more values than model 'tabular' takes \(at most 1920"):
        decode_infer_request("tabular", "1", flood, None, bounds)
    largest = body("features", "FP32", [64, 30], [0.5] * 1920)
    assert decode_infer_request("tabular", "1", largest, None, bounds).inputs[0].shape == (64, 30)


def test_a_shape_over_the_bound_is_refused_before_its_values_are_converted() -> None:
    bounds = bounds_of("text", TEXT)
    many = body("text", "BYTES", [1_000], [""] * 100)  # few values: only the shape tells
    with pytest.raises(
        BadRequest,
        match=r"input 'text': shape \[1000\] has 1000 elements; model 'text' takes at most 64",
    ):
        decode_infer_request("text", "1", many, None, bounds)
    other = body("other", "BYTES", [100], [""] * 100)  # not the model's: Triton says so
    assert len(decode_infer_request("text", "1", other, None, bounds).inputs) == 1


def test_commas_inside_texts_do_not_count_as_values() -> None:
    bounds = bounds_of("text", TEXT)
    prose = 'one, two, "three", ' * 5_000 + "end"
    texts = body("text", "BYTES", [64], [prose] * 64)
    assert len(decode_infer_request("text", "1", texts, None, bounds).inputs) == 1
    strings = body("text", "BYTES", [1], [""] * 100_000)  # refused by its quotes
    with pytest.raises(BadRequest, match="more values than model 'text' takes"):
        decode_infer_request("text", "1", strings, None, bounds)
    numbers = body("text", "BYTES", [1], [0] * 100_000)  # commas outside any string
    with pytest.raises(BadRequest, match="more values than model 'text' takes"):
        decode_infer_request("text", "1", numbers, None, bounds)

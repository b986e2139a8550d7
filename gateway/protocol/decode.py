"""Decode a v2 inference request body: JSON, or JSON plus binary tensor data.

With the binary tensor data extension the body is a JSON header of
`Inference-Header-Content-Length` bytes followed by the raw tensors, in the order of the
inputs that carry a `binary_data_size` parameter. Every problem becomes a `BadRequest`
whose message names the offending input or field.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from gateway.errors import BadRequest
from gateway.protocol.bounds import UNBOUNDED, InputBounds
from gateway.protocol.datatypes import (
    BF16,
    BYTES,
    DATATYPES,
    ELEMENT_SIZES,
    NUMPY_DTYPES,
    decode_bytes_elements,
    element_count,
    encode_bytes_elements,
)
from gateway.protocol.types import InferRequest, Parameter, RequestedOutput, Tensor

# numpy kinds a JSON list may decode to, per target kind ('b' bool, 'i'/'u' int, 'f' float)
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
_PACKED_FLOATS = {"FP32": "f", "FP64": "d"}  # struct codes, little-endian like Triton's


def decode_infer_request(
    model: str,
    version: str,
    body: bytes,
    header_length: int | None,
    bounds: InputBounds = UNBOUNDED,
) -> InferRequest:
    """Decode `body`; `header_length` is the `Inference-Header-Content-Length` header.
    `bounds` (the model's) are checked before the JSON is parsed and before each input's
    values are converted."""
    header, binary = _split(body, header_length)
    bounds.check_json(header)
    document = _parse_json(header)
    inputs = _decode_inputs(document.get("inputs"), binary, bounds)
    outputs = _decode_outputs(document.get("outputs"))
    binary_output, parameters = _decode_parameters(document.get("parameters"))
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    return InferRequest(
        model=model,
        version=version,
        inputs=inputs,
        outputs=outputs,
        id=request_id,
        binary_output=binary_output,
        parameters=parameters,
    )


def _split(body: bytes, header_length: int | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    if not 0 < header_length <= len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
        )
    view = memoryview(body)
    return bytes(view[:header_length]), view[header_length:]


def _parse_json(header: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest("the request must be a JSON object")
    return document


def _decode_inputs(raw: Any, binary: memoryview, bounds: InputBounds) -> tuple[Tensor, ...]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'inputs' must be a non-empty list")
    tensors = []
    seen: set[str] = set()
    offset = 0
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"inputs[{position}] must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"inputs[{position}] needs a 'name'")
        if name in seen:
            raise BadRequest(f"input '{name}' is given twice")
        seen.add(name)
        datatype = item.get("datatype")
        if datatype not in DATATYPES:
            raise BadRequest(
                f"input '{name}': unknown datatype {datatype!r}; expected one of "
                + ", ".join(sorted(DATATYPES))
            )
        shape = _decode_shape(name, item.get("shape"))
        bounds.check_shape(name, shape, element_count(shape))
        parameters = _object(item.get("parameters"), f"input '{name}': 'parameters'")
        if "shared_memory_region" in parameters:
            raise BadRequest(f"input '{name}': shared memory is not available through the gateway")
        size = parameters.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise BadRequest(f"input '{name}': 'binary_data_size' must be a byte count")
            if offset + size > len(binary):
                raise BadRequest(
                    f"input '{name}': binary_data_size {size} runs past the end of the body"
                )
            data = bytes(binary[offset : offset + size])
            offset += size
            _check_binary(name, datatype, shape, data)
        elif "data" in item:
            data = _json_to_raw(name, datatype, shape, item["data"])
        else:
            raise BadRequest(f"input '{name}' has neither 'data' nor a 'binary_data_size'")
        tensors.append(Tensor(name, datatype, shape, data))
    if offset != len(binary):
        raise BadRequest(f"{len(binary) - offset} bytes of binary data belong to no input")
    return tuple(tensors)


def _decode_shape(name: str, raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in raw
    ):
        raise BadRequest(f"input '{name}': 'shape' must be a list of non-negative integers")
    return tuple(raw)


def _object(raw: Any, what: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest(f"{what} must be an object")
    return raw


def _check_binary(name: str, datatype: str, shape: tuple[int, ...], data: bytes) -> None:
    count = element_count(shape)
    if datatype == BYTES:
        try:
            elements = len(decode_bytes_elements(data))
        except ValueError as exc:
            raise BadRequest(f"input '{name}': malformed BYTES data: {exc}") from exc
        if elements != count:
            raise BadRequest(
                f"input '{name}': shape {list(shape)} needs {count} elements, got {elements}"
            )
        return
    expected = count * ELEMENT_SIZES[datatype]
    if len(data) != expected:
        raise BadRequest(
            f"input '{name}': shape {list(shape)} of {datatype} needs {expected} bytes, "
            f"got {len(data)}"
        )


def _json_to_raw(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> bytes:
    count = element_count(shape)
    packed = _floats_packed(datatype, count, data)
    if packed is not None:
        return packed
    if datatype == BYTES:
        elements = _flatten_text(name, data)
        if len(elements) != count:
            raise BadRequest(
                f"input '{name}': shape {list(shape)} needs {count} elements, "
                f"'data' has {len(elements)}"
            )
        return encode_bytes_elements(elements)
    if datatype == BF16:
        raise BadRequest(f"input '{name}': BF16 tensors must be sent as binary data")
    dtype = NUMPY_DTYPES[datatype]
    try:
        array = np.asarray(data)
    except ValueError as exc:
        raise BadRequest(f"input '{name}': 'data' is not a regular array of numbers") from exc
    if array.size != count:
        raise BadRequest(
            f"input '{name}': shape {list(shape)} needs {count} elements, 'data' has {array.size}"
        )
    if count and array.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
        raise BadRequest(f"input '{name}': 'data' holds values that are not {datatype}")
    if count and dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise BadRequest(f"input '{name}': a value is out of range for {datatype}")
    with np.errstate(over="ignore"):
        converted = array.astype(dtype)
    # JSON has no infinity, so an infinite value here is one too large for the datatype.
    if count and dtype.kind == "f" and not np.isfinite(converted).all():
        largest = float(np.finfo(dtype).max)
        raise BadRequest(
            f"input '{name}': a value is out of range for {datatype} (largest {largest:.4g})"
        )
    return converted.tobytes()


def _floats_packed(datatype: str, count: int, data: Any) -> bytes | None:
    """FP32 / FP64 data that is a list of floats, flat or of equal rows, packed as Triton
    takes it; None for anything else (numpy converts it, or names what is wrong).

    The common case of a small JSON request, without numpy's per-call overhead (~1 µs
    against ~6). Only Python floats: packing a double as a float rounds once, as numpy's
    cast does, and a value out of range raises (numpy's path then says which); ints go to
    numpy, which converts int64 to float32 in one rounding, not two."""
    code = _PACKED_FLOATS.get(datatype)
    if code is None or type(data) is not list:
        return None
    flat: list[Any] = data
    if data and type(data[0]) is list:
        width = len(data[0])
        flat = []
        for row in data:
            if type(row) is not list or len(row) != width:
                return None
            flat += row
    if len(flat) != count or any(type(value) is not float for value in flat):
        return None
    try:
        return struct.pack(f"<{count}{code}", *flat)
    except OverflowError:
        return None


def _flatten_text(name: str, data: Any) -> list[bytes]:
    out: list[bytes] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            out.append(item.encode("utf-8"))
        else:
            raise BadRequest(f"input '{name}': BYTES 'data' must hold strings")
    return out


def _decode_outputs(raw: Any) -> tuple[RequestedOutput, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadRequest("'outputs' must be a list")
    outputs = []
    seen: set[str] = set()
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest(f"outputs[{position}] must be an object with a 'name'")
        name = item["name"]
        if name in seen:
            raise BadRequest(f"output '{name}' is requested twice")
        seen.add(name)
        parameters = _object(item.get("parameters"), f"output '{name}': 'parameters'")
        if "shared_memory_region" in parameters:
            raise BadRequest(f"output '{name}': shared memory is not available through the gateway")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise BadRequest(f"output '{name}': 'binary_data' must be true or false")
        class_count = parameters.get("classification", 0)
        if isinstance(class_count, bool) or not isinstance(class_count, int) or class_count < 0:
            raise BadRequest(f"output '{name}': 'classification' must be a non-negative integer")
        outputs.append(RequestedOutput(name, binary, class_count))
    return tuple(outputs)


def _decode_parameters(raw: Any) -> tuple[bool, dict[str, Parameter]]:
    parameters = dict(_object(raw, "'parameters'"))
    binary_output = parameters.pop("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise BadRequest("parameter 'binary_data_output' must be true or false")
    for key, value in parameters.items():
        if not isinstance(value, bool | int | float | str):
            raise BadRequest(f"parameter '{key}' must be a string, number or boolean")
    return binary_output, parameters

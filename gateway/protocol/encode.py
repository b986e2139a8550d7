"""Encode an inference result as a v2 response: JSON, or JSON plus binary tensor data.

An output goes back as binary data when its request entry says `binary_data: true`, or
when the request's `binary_data_output` parameter is true and its entry does not say
otherwise; the response then carries `Inference-Header-Content-Length`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from gateway.errors import BadRequest
from gateway.protocol.datatypes import BYTES, NUMPY_DTYPES, decode_bytes_elements
from gateway.protocol.types import InferRequest, InferResult, Tensor

JSON = b"application/json"
OCTET_STREAM = b"application/octet-stream"


@dataclass(frozen=True, slots=True)
class EncodedResponse:
    """A response body, its content type, and the JSON header's length when binary follows."""

    body: bytes
    content_type: bytes
    header_length: int | None


def encode_infer_response(request: InferRequest, result: InferResult) -> EncodedResponse:
    outputs: list[dict[str, Any]] = []
    binaries: list[bytes] = []
    tensors = result.outputs
    if request.outputs:  # in the order the request named them (a cached result may differ)
        order = {output.name: index for index, output in enumerate(request.outputs)}
        tensors = tuple(sorted(tensors, key=lambda t: order.get(t.name, len(order))))
    for tensor in tensors:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if request.wants_binary(tensor.name):
            entry["parameters"] = {"binary_data_size": len(tensor.data)}
            binaries.append(tensor.data)
        else:
            entry["data"] = _json_data(tensor)
        outputs.append(entry)
    document: dict[str, Any] = {}
    if request.id is not None:
        document["id"] = request.id
    document["model_name"] = result.model
    document["model_version"] = result.version
    document["outputs"] = outputs
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binaries:
        return EncodedResponse(header, JSON, None)
    return EncodedResponse(header + b"".join(binaries), OCTET_STREAM, len(header))


def _json_data(tensor: Tensor) -> Any:
    if tensor.datatype == BYTES:
        try:
            return [element.decode("utf-8") for element in decode_bytes_elements(tensor.data)]
        except UnicodeDecodeError as exc:
            raise BadRequest(
                f"output '{tensor.name}' holds bytes that are not UTF-8 text; "
                "request it with binary_data"
            ) from exc
    dtype = NUMPY_DTYPES.get(tensor.datatype)
    if dtype is None:
        raise BadRequest(
            f"output '{tensor.name}' is {tensor.datatype}; request it with binary_data"
        )
    return np.frombuffer(tensor.data, dtype=dtype)

"""Triton's binary tensor data extension, both ways: a request as a small JSON header then
the raw input bytes; a response's outputs read as raw bytes after its JSON header (every
output is asked for as binary), so tensors cross in their wire form with no JSON lists."""

from __future__ import annotations

import sys
from typing import Any

import orjson

from gateway.backends.triton.answers import UnusableAnswer
from gateway.protocol.types import InferRequest, InferResult, Tensor


def encode_request(request: InferRequest) -> tuple[bytes, bytes]:
    """Triton's binary tensor data extension: a JSON header, then the raw input bytes."""
    inputs = [
        {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
            "parameters": {"binary_data_size": len(tensor.data)},
        }
        for tensor in request.inputs
    ]
    document: dict[str, Any] = {}
    if request.id is not None:
        document["id"] = request.id
    document["inputs"] = inputs
    if request.outputs:
        document["outputs"] = [
            {
                "name": output.name,
                "parameters": {"binary_data": True}
                | ({"classification": output.class_count} if output.class_count else {}),
            }
            for output in request.outputs
        ]
    document["parameters"] = {**request.parameters, "binary_data_output": True}
    return orjson.dumps(document), b"".join(tensor.data for tensor in request.inputs)


def decode_response(
    model: str, body: bytes, header_length: bytes | None, triton_s: float
) -> InferResult:
    try:
        length = int(header_length) if header_length is not None else len(body)
        document = orjson.loads(body[:length])
        outputs = []
        offset = length
        for output in document.get("outputs", []):
            size = int(output.get("parameters", {}).get("binary_data_size", -1))
            if size < 0 or offset + size > len(body):
                raise ValueError(f"output {output.get('name')!r} has no binary data")
            data = body[offset : offset + size]
            offset += size
            # Interned: the same few names in every cached result, not a copy in each.
            name, datatype = sys.intern(output["name"]), sys.intern(output["datatype"])
            outputs.append(Tensor(name, datatype, tuple(output["shape"]), data))
        return InferResult(
            document.get("model_name", model),
            str(document["model_version"]),
            tuple(outputs),
            triton_s,
        )
    except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        raise UnusableAnswer(f"Triton's answer could not be read: {exc}") from exc

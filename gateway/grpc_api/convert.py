"""KServe v2 gRPC messages to and from the REST request path's own forms.

A `ModelInferRequest` becomes the body of a REST request in the binary tensor data extension
(a JSON header, then each input's raw bytes, every output asked for as binary), which is
what the data plane answers, caches and traces: a gRPC and a REST request for the same
tensors are one cache entry. The answer, a JSON header and raw output bytes, becomes a
`ModelInferResponse` with `raw_output_contents`.

Inputs come as `raw_input_contents` or in the typed `contents` fields; both are accepted.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from tritonclient.grpc import service_pb2

from gateway.errors import BadRequest, GatewayError
from gateway.protocol import EncodedResponse

# datatype -> (the InferTensorContents field, the little-endian dtype of its raw bytes)
TYPED_CONTENTS: dict[str, tuple[str, str]] = {
    "BOOL": ("bool_contents", "|b1"),
    "INT8": ("int_contents", "<i1"),
    "INT16": ("int_contents", "<i2"),
    "INT32": ("int_contents", "<i4"),
    "INT64": ("int64_contents", "<i8"),
    "UINT8": ("uint_contents", "<u1"),
    "UINT16": ("uint_contents", "<u2"),
    "UINT32": ("uint_contents", "<u4"),
    "UINT64": ("uint64_contents", "<u8"),
    "FP32": ("fp32_contents", "<f4"),
    "FP64": ("fp64_contents", "<f8"),
}
_LENGTH = struct.Struct("<I")


def parameters(source: Any) -> dict[str, Any]:
    """A protobuf map<string, InferParameter> as the REST JSON `parameters`."""
    values: dict[str, Any] = {}
    for name, parameter in source.items():
        kind = parameter.WhichOneof("parameter_choice")
        if kind is not None:
            values[name] = getattr(parameter, kind)
    return values


def infer_body(request: service_pb2.ModelInferRequest) -> tuple[bytes, int]:
    """The REST binary-extension body of `request` and its JSON header's length."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    typed = [tensor.name for tensor in request.inputs if tensor.HasField("contents")]
    if raw and typed:  # Triton's own words for it
        raise BadRequest(
            f"contents field must not be specified when using raw_input_contents for "
            f"'{typed[0]}' for model '{request.model_name}'"
        )
    inputs, blobs = [], []
    for index, tensor in enumerate(request.inputs):
        data = raw[index] if raw else _typed_bytes(tensor)
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": {**parameters(tensor.parameters), "binary_data_size": len(data)},
            }
        )
        blobs.append(data)
    document: dict[str, Any] = {}
    if request.id:
        document["id"] = request.id
    document["inputs"] = inputs
    if request.outputs:
        document["outputs"] = [
            {"name": o.name, "parameters": {**parameters(o.parameters), "binary_data": True}}
            for o in request.outputs
        ]
    document["parameters"] = {**parameters(request.parameters), "binary_data_output": True}
    header = orjson.dumps(document)
    return header + b"".join(blobs), len(header)


def infer_response(encoded: EncodedResponse) -> service_pb2.ModelInferResponse:
    """The data plane's answer (every output binary) as a `ModelInferResponse`."""
    length = encoded.header_length if encoded.header_length is not None else len(encoded.body)
    document = orjson.loads(encoded.body[:length])
    response = service_pb2.ModelInferResponse(
        model_name=document.get("model_name", ""),
        model_version=str(document.get("model_version", "")),
        id=document.get("id", ""),
    )
    offset = length
    for output in document.get("outputs", []):
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            raise GatewayError(f"output '{output['name']}' came back without binary data")
        response.outputs.add(
            name=output["name"], datatype=output["datatype"], shape=output["shape"]
        )
        response.raw_output_contents.append(encoded.body[offset : offset + size])
        offset += size
    return response


def from_json(document: Any, message: Message) -> Message:
    """Triton's REST JSON (metadata, config, statistics) as the gRPC message."""
    return json_format.ParseDict(document, message, ignore_unknown_fields=True)


def _typed_bytes(tensor: service_pb2.ModelInferRequest.InferInputTensor) -> bytes:
    contents = tensor.contents
    if tensor.datatype == "BYTES":
        return b"".join(_LENGTH.pack(len(item)) + item for item in contents.bytes_contents)
    typed = TYPED_CONTENTS.get(tensor.datatype)
    if typed is None:
        raise BadRequest(
            f"input '{tensor.name}': {tensor.datatype} data goes in raw_input_contents"
        )
    field, dtype = typed
    return np.asarray(getattr(contents, field), dtype=dtype).tobytes()

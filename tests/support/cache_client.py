"""A small client for cache tests: send an inference request, read X-Cache and outputs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
from numpy.typing import NDArray

from tests.support.keys import auth_headers


@dataclass
class Answer:
    status: int
    cache: str | None
    version: str | None
    outputs: dict[str, Any]
    body: dict[str, Any]


def infer(
    url: str,
    model: str,
    inputs: dict[str, NDArray[Any]],
    *,
    version: str | None = None,
    binary: bool = False,
    headers: dict[str, str] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    request_id: str | None = None,
) -> Answer:
    """JSON (or binary-extension) request; outputs decoded to plain lists either way."""
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    tensors = []
    payload = b""
    for name, array in inputs.items():
        tensor: dict[str, Any] = {
            "name": name,
            "shape": list(array.shape),
            "datatype": _datatype(array),
        }
        if binary:
            tensor["parameters"] = {"binary_data_size": array.nbytes}
            payload += array.tobytes()
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    document: dict[str, Any] = {"inputs": tensors}
    if outputs is not None:
        document["outputs"] = outputs
    if request_id is not None:
        document["id"] = request_id
    header = orjson.dumps(document)
    all_headers = {**auth_headers(), **(headers or {})}
    if binary:
        all_headers["Inference-Header-Content-Length"] = str(len(header))
    response = httpx.post(url + path, content=header + payload, headers=all_headers, timeout=60)
    if response.status_code != 200:
        return Answer(response.status_code, None, None, {}, response.json())
    return _answer(response)


def _datatype(array: NDArray[Any]) -> str:
    return {"float32": "FP32", "int32": "INT32", "int64": "INT64", "float64": "FP64"}[
        str(array.dtype)
    ]


def _answer(response: httpx.Response) -> Answer:
    length = response.headers.get("inference-header-content-length")
    content = response.content
    header = orjson.loads(content[: int(length)] if length else content)
    offset = int(length) if length else 0
    outputs: dict[str, Any] = {}
    for output in header["outputs"]:
        if "data" in output:
            outputs[output["name"]] = output["data"]
            continue
        size = output["parameters"]["binary_data_size"]
        dtype = {"FP32": "<f4", "INT64": "<i8"}[output["datatype"]]
        outputs[output["name"]] = np.frombuffer(content[offset : offset + size], dtype).tolist()
        offset += size
    return Answer(200, response.headers.get("x-cache"), header["model_version"], outputs, header)


def triton_count(
    metrics_url: str, model: str, version: str, name: str = "nv_inference_count"
) -> float:
    text = httpx.get(metrics_url).text
    match = re.search(rf'^{name}{{model="{model}",version="{version}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0

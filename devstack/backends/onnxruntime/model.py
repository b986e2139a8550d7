"""A Python-based Triton backend named `onnxruntime`: runs ONNX models on the CPU.

Triton loads `<backend-directory>/onnxruntime/model.py` for every model whose config says
`backend: "onnxruntime"` when no native `libtriton_onnxruntime.so` is installed there. The
model repository therefore stays exactly what the NGC Triton image expects
(`config.pbtxt` + `<version>/model.onnx`) and runs unchanged on its native ONNX Runtime or
TensorRT backends; this file only stands in for them on a CPU machine without Docker.

What it does, per `execute()` call (one call carries every request of a dynamic batch):
- decodes each request's inputs (BYTES become `str` arrays, which ONNX Runtime expects);
- groups the requests whose inputs agree on every dimension after the batch axis, joins each
  group along the batch axis, runs it with one `session.run`, and splits the outputs back;
- turns a failure into an error response for the request that caused it: a group whose run
  fails is re-run one request at a time, so one bad request never fails its neighbours.

Settings read from the model config's `parameters` (the keys of Triton's native backend):
`intra_op_thread_count`, `inter_op_thread_count` (0 or absent: ONNX Runtime's default).

It runs inside Triton's Python stub, so it imports only numpy, onnxruntime and the stub's
`triton_python_backend_utils`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils
from numpy.typing import NDArray

# Triton config data types and the numpy types ONNX Runtime takes for them. TYPE_BF16 is
# absent: numpy has no bfloat16, so such a model is refused at load time.
NUMPY_TYPES: dict[str, Any] = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}


class RequestError(Exception):
    """A problem with one request; it becomes that request's error response."""


@dataclass
class Decoded:
    """One request's inputs, ready for ONNX Runtime."""

    feeds: dict[str, NDArray[Any]]
    batch: int
    requested: list[str]


class TritonPythonModel:
    """Entry point Triton's Python backend looks for."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._name = args["model_name"]
        self._batching = int(config.get("max_batch_size", 0)) > 0
        self._inputs = {i["name"]: _numpy_type(i) for i in config["input"]}
        self._outputs = {o["name"]: _numpy_type(o) for o in config["output"]}
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        self._session = ort.InferenceSession(
            path, _session_options(config.get("parameters", {})), providers=["CPUExecutionProvider"]
        )
        _check_names(self._name, "input", self._inputs, self._session.get_inputs())
        _check_names(self._name, "output", self._outputs, self._session.get_outputs())

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        decoded: dict[int, Decoded] = {}
        for index, request in enumerate(requests):
            try:
                decoded[index] = self._decode(request)
            except RequestError as exc:
                responses[index] = _error(str(exc), invalid_argument=True)
        for group in self._groups(decoded):
            self._run_group(group, decoded, responses)
        return responses

    def finalize(self) -> None:
        del self._session

    def _decode(self, request: Any) -> Decoded:
        feeds: dict[str, NDArray[Any]] = {}
        for name, numpy_type in self._inputs.items():
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise RequestError(f"input '{name}' is missing")
            array = tensor.as_numpy()
            feeds[name] = _to_text(name, array) if numpy_type is np.object_ else array
        batch = next(iter(feeds.values())).shape[0] if self._batching else 1
        requested = list(request.requested_output_names()) or list(self._outputs)
        return Decoded(feeds, batch, requested)

    def _groups(self, decoded: dict[int, Decoded]) -> list[list[int]]:
        """Requests that can share one `session.run`: same dims after the batch axis."""
        if not self._batching:
            return [[index] for index in decoded]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, item in decoded.items():
            key = tuple((name, a.shape[1:], a.dtype.str) for name, a in item.feeds.items())
            groups.setdefault(key, []).append(index)
        return list(groups.values())

    def _run_group(
        self, group: list[int], decoded: dict[int, Decoded], responses: list[Any]
    ) -> None:
        items = [decoded[index] for index in group]
        try:
            outputs = self._run(items)
        except Exception as exc:  # noqa: BLE001 - any failure becomes this request's error
            if len(group) > 1:  # find the culprit: run each request on its own
                for index in group:
                    self._run_group([index], decoded, responses)
                return
            responses[group[0]] = _error(f"model '{self._name}' failed: {exc}")
            return
        for index, item, item_outputs in zip(group, items, outputs, strict=True):
            tensors = [pb_utils.Tensor(name, item_outputs[name]) for name in item.requested]
            responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)

    def _run(self, items: list[Decoded]) -> list[dict[str, NDArray[Any]]]:
        """One `session.run` over the requests joined along the batch axis, split back."""
        if len(items) == 1:
            feeds = items[0].feeds
        else:
            feeds = {name: np.concatenate([i.feeds[name] for i in items]) for name in self._inputs}
        names = list(self._outputs)
        results = dict(zip(names, self._session.run(names, feeds), strict=True))
        results = {name: _from_onnx(value, self._outputs[name]) for name, value in results.items()}
        if len(items) == 1:
            return [results]
        bounds = np.cumsum([item.batch for item in items])[:-1]
        split = {name: np.split(value, bounds) for name, value in results.items()}
        return [{name: split[name][i] for name in names} for i in range(len(items))]


def _numpy_type(tensor_config: dict[str, Any]) -> Any:
    data_type = tensor_config["data_type"]
    if data_type not in NUMPY_TYPES:
        raise ValueError(f"'{tensor_config['name']}': data type {data_type} is not supported")
    return NUMPY_TYPES[data_type]


def _session_options(parameters: dict[str, dict[str, str]]) -> ort.SessionOptions:
    options = ort.SessionOptions()
    for key, attribute in (
        ("intra_op_thread_count", "intra_op_num_threads"),
        ("inter_op_thread_count", "inter_op_num_threads"),
    ):
        value = parameters.get(key, {}).get("string_value")
        if value:
            setattr(options, attribute, int(value))
    return options


def _check_names(model: str, kind: str, configured: dict[str, Any], graph: list[Any]) -> None:
    missing = sorted(set(configured) - {node.name for node in graph})
    if missing:
        raise ValueError(f"model '{model}': config {kind}s {missing} are not in model.onnx")


def _to_text(name: str, array: NDArray[Any]) -> NDArray[Any]:
    """Triton hands BYTES over as `bytes` objects; ONNX Runtime's strings are `str`."""
    try:
        text = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    except UnicodeDecodeError as exc:
        raise RequestError(f"input '{name}' is not valid UTF-8 text: {exc}") from exc
    return np.array(text, dtype=np.object_).reshape(array.shape)


def _from_onnx(value: Any, numpy_type: Any) -> NDArray[Any]:
    array = np.asarray(value)
    if numpy_type is np.object_:
        encoded = [v.encode("utf-8") if isinstance(v, str) else v for v in array.reshape(-1)]
        return np.array(encoded, dtype=np.object_).reshape(array.shape)
    return array.astype(numpy_type, copy=False)


def _error(message: str, invalid_argument: bool = False) -> Any:
    code = getattr(pb_utils.TritonError, "INVALID_ARG" if invalid_argument else "INTERNAL", None)
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(error=error)

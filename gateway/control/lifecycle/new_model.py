"""A new model's `config.pbtxt`, derived from its ONNX file's signature.

    name, backend "onnxruntime"
    inputs and outputs by the graph's names, their v2 datatypes (`data_type: TYPE_...`)
    a batch dimension when every input and output starts with a dynamic one: then
      `max_batch_size` (64 unless asked) and dynamic batching, and the dims after it;
      otherwise `max_batch_size: 0` and the full shapes
    dynamic dimensions as -1; a batched tensor with no other dimension gets dims [1] and
      `reshape { shape: [] }`, as Triton needs
    `instance_group [ { count: N } ]` (no kind: Triton places it on a GPU where there is one)

The text is what `gateway models add` shows before writing it; a model folder with a
config of its own is taken as it is instead (any backend Triton has).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto

from gateway.control.lifecycle.config_file import ONNX_TYPES
from gateway.control.lifecycle.errors import LifecycleError

DEFAULT_MAX_BATCH_SIZE = 64


@dataclass(frozen=True)
class ModelOptions:
    """What `gateway models add` lets a person choose."""

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE  # used when the graph has a batch dimension
    instances: int = 1
    dynamic_batching: bool = True


@dataclass(frozen=True)
class _Tensor:
    name: str
    data_type: str
    shape: tuple[int, ...]  # -1: dynamic


def config_for(name: str, data: bytes, options: ModelOptions | None = None) -> str:
    """The config.pbtxt text of a model named `name` served from ONNX file `data`."""
    options = options or ModelOptions()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:
        raise LifecycleError(f"not a valid ONNX model: {type(exc).__name__}: {exc}") from exc
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_tensor(v) for v in model.graph.input if v.name not in initializers]
    outputs = [_tensor(v) for v in model.graph.output]
    if not inputs or not outputs:
        raise LifecycleError("the ONNX graph has no inputs or no outputs to serve")
    batched = all(t.shape and t.shape[0] == -1 for t in (*inputs, *outputs))
    max_batch = options.max_batch_size if batched else 0
    if options.max_batch_size < 1 or options.instances < 1:
        raise LifecycleError("max_batch_size and instances are at least 1")
    lines = [
        f'name: "{name}"',
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch}",
        "input [",
        ",\n".join(_entry(t, batched) for t in inputs),
        "]",
        "output [",
        ",\n".join(_entry(t, batched) for t in outputs),
        "]",
    ]
    if batched and options.dynamic_batching:
        lines.append("dynamic_batching { }")
    lines.append(f"instance_group [ {{ count: {options.instances} }} ]")
    return "\n".join(lines) + "\n"


def _tensor(value: onnx.ValueInfoProto) -> _Tensor:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise LifecycleError(f"'{value.name}' is a {kind}, not a tensor; Triton serves tensors")
    tensor = value.type.tensor_type
    data_type = ONNX_TYPES.get(tensor.elem_type)
    if data_type is None:
        element = TensorProto.DataType.Name(tensor.elem_type)
        raise LifecycleError(f"'{value.name}' has ONNX element type {element}, which Triton lacks")
    if not tensor.HasField("shape"):
        raise LifecycleError(f"'{value.name}' has no shape in the graph; give it one")
    shape = tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim
    )
    return _Tensor(value.name, data_type, shape)


def _entry(tensor: _Tensor, batched: bool) -> str:
    dims = list(tensor.shape[1:] if batched else tensor.shape)
    reshape = ""
    if not dims:  # Triton needs a dimension after the batch one
        dims, reshape = [1], " reshape: { shape: [ ] }"
    listed = ", ".join(str(d) for d in dims)
    return (
        f'  {{ name: "{tensor.name}" data_type: {tensor.data_type} dims: [ {listed} ]{reshape} }}'
    )

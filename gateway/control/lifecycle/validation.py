"""Is this ONNX file a valid next version of that model? Checked before anything changes.

The graph must parse and pass ONNX's checker, and have each input and output the config
names, with the config's data type and a compatible shape: the same rank (plus the batch
axis when the model batches), equal wherever both sides fix a dimension.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from gateway.control.lifecycle.config_file import ModelConfig, datatype_name
from gateway.control.lifecycle.errors import LifecycleError

_ONNX_TYPES: dict[int, str] = {
    TensorProto.BOOL: "TYPE_BOOL",
    TensorProto.UINT8: "TYPE_UINT8",
    TensorProto.UINT16: "TYPE_UINT16",
    TensorProto.UINT32: "TYPE_UINT32",
    TensorProto.UINT64: "TYPE_UINT64",
    TensorProto.INT8: "TYPE_INT8",
    TensorProto.INT16: "TYPE_INT16",
    TensorProto.INT32: "TYPE_INT32",
    TensorProto.INT64: "TYPE_INT64",
    TensorProto.FLOAT16: "TYPE_FP16",
    TensorProto.FLOAT: "TYPE_FP32",
    TensorProto.DOUBLE: "TYPE_FP64",
    TensorProto.STRING: "TYPE_STRING",
    TensorProto.BFLOAT16: "TYPE_BF16",
}


def validate_onnx(data: bytes, config: ModelConfig) -> None:
    """Raise `LifecycleError` naming the problem unless `data` fits `config`."""
    try:
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:
        raise LifecycleError(f"not a valid ONNX model: {type(exc).__name__}: {exc}") from exc
    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = {v.name: v for v in model.graph.input if v.name not in initializers}
    graph_outputs = {v.name: v for v in model.graph.output}
    batch = 1 if config.max_batch_size > 0 else 0
    for kind, wanted, found in (
        ("input", config.input, graph_inputs),
        ("output", config.output, graph_outputs),
    ):
        for tensor in wanted:
            if tensor.name not in found:
                raise LifecycleError(
                    f"the model has no {kind} '{tensor.name}' (it has {sorted(found)})"
                )
            _check(
                kind,
                tensor.name,
                datatype_name(tensor.data_type),
                list(tensor.dims),
                batch,
                found[tensor.name],
            )


def _check(
    kind: str, name: str, datatype: str, dims: list[int], batch: int, value: onnx.ValueInfoProto
) -> None:
    tensor_type = value.type.tensor_type
    elem_type = int(tensor_type.elem_type)
    actual = _ONNX_TYPES.get(elem_type, f"ONNX type {elem_type}")
    if actual != datatype:
        raise LifecycleError(
            f"{kind} '{name}' is {actual} in the model but {datatype} in the config"
        )
    if not tensor_type.HasField("shape"):
        return
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
    expected = [-1] * batch + dims
    if len(shape) != len(expected) or any(
        a != b and a != -1 and b != -1 for a, b in zip(shape, expected, strict=False)
    ):
        raise LifecycleError(
            f"{kind} '{name}' has shape {shape} in the model; the config needs {expected}"
        )

"""Is this ONNX file a valid next version of that model? Checked before anything changes.

The graph must parse and pass ONNX's checker, and have each input and output the config
names, with the config's data type and a compatible shape: the same rank (plus the batch
axis when the model batches), equal wherever both sides fix a dimension.
"""

from __future__ import annotations

import onnx

from gateway.control.lifecycle.config_file import (
    ONNX_TYPES,
    ModelConfig,
    datatype_name,
    described_type,
)
from gateway.control.lifecycle.errors import LifecycleError


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
    actual = ONNX_TYPES.get(elem_type)
    if actual != datatype:
        found = described_type(actual) if actual else f"ONNX type {elem_type}"
        raise LifecycleError(
            f"{kind} '{name}' is {found} in the model but {described_type(datatype)} in the config"
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

"""Activation smoothing before int8 quantization (SmoothQuant, Xiao et al. 2023).

Dynamic int8 quantizes each activation tensor with one scale, so a few channels with large
values (BERT's LayerNorm outputs have them) leave little precision for the rest. For each
MatMul `X @ W` with constant W, smoothing picks a per-channel factor
`s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)` from calibration activations and rewrites it
as `(X * (1/s)) @ (diag(s) W)`: the same function in fp32, with the outliers moved into
weights, which are quantized per channel. MatMuls sharing an input (query, key, value)
share one factor, so one inserted Mul feeds them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import helper, numpy_helper

Batches = Iterable[dict[str, NDArray[np.int64]]]


def smooth(
    source: Path,
    target: Path,
    calibration: Callable[[], Batches],
    alpha: float,
    skip: Sequence[str] = (),
) -> None:
    """Write `source` smoothed to `target`; MatMuls named in `skip` are left as they are."""
    model = onnx.load(str(source))
    weights = {init.name: init for init in model.graph.initializer}
    by_input: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights and node.name not in skip:
            by_input.setdefault(node.input[0], []).append(node)
    ranges = _activation_ranges(source, sorted(by_input), calibration)
    inserted = []
    for name, nodes in by_input.items():
        arrays = [numpy_helper.to_array(weights[node.input[1]]) for node in nodes]
        weight_range = np.max([np.abs(array).max(axis=1) for array in arrays], axis=0)
        factor = np.maximum(ranges[name], 1e-5) ** alpha / np.maximum(weight_range, 1e-5) ** (
            1 - alpha
        )
        factor = np.clip(factor, 1e-2, 1e2).astype(np.float32)
        inverse = numpy_helper.from_array((1 / factor).astype(np.float32), f"{name}/smooth_inv")
        model.graph.initializer.append(inverse)
        smoothed = helper.make_node(
            "Mul", [name, inverse.name], [f"{name}/smoothed"], name=f"{name}/smooth"
        )
        inserted.append(smoothed)
        for node, array in zip(nodes, arrays, strict=True):
            scaled = numpy_helper.from_array(
                (array * factor[:, None]).astype(np.float32), node.input[1]
            )
            weights[node.input[1]].CopyFrom(scaled)
            node.input[0] = f"{name}/smoothed"
    _sort_topologically(model, inserted)
    onnx.save(model, str(target))


def _activation_ranges(
    source: Path, names: list[str], calibration: Callable[[], Batches]
) -> dict[str, NDArray[np.float32]]:
    """Per channel, the largest |value| of each named tensor over the calibration's real
    (unpadded) tokens."""
    probe = onnx.load(str(source))
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    ranges: dict[str, NDArray[np.float32]] = {}
    for batch in calibration():
        real = batch["attention_mask"].astype(bool)
        for name, values in zip(names, session.run(names, batch), strict=True):
            largest = np.abs(values[real]).max(axis=0)
            ranges[name] = np.maximum(ranges[name], largest) if name in ranges else largest
    return ranges


def _sort_topologically(model: onnx.ModelProto, inserted: list[onnx.NodeProto]) -> None:
    available = {value.name for value in model.graph.input}
    available |= {init.name for init in model.graph.initializer}
    pending = [*model.graph.node, *inserted]
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [node for node in pending if all(not i or i in available for i in node.input)]
        if not ready:
            raise RuntimeError("smoothing left a graph with a cycle")
        for node in ready:
            available.update(node.output)
        ordered.extend(ready)
        done = {id(node) for node in ready}
        pending = [node for node in pending if id(node) not in done]
    del model.graph.node[:]
    model.graph.node.extend(ordered)

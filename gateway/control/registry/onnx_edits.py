"""Small edits to exported ONNX graphs so their inputs and outputs match `config.pbtxt` (used
by the MLflow source for scikit-learn models, and by `model_build` for the repository's own)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

OPSET = 17
ML_OPSET = 3


def label_as_column(model: onnx.ModelProto, name: str = "label") -> onnx.ModelProto:
    """Turn a `[batch]` output into `[batch, 1]`, so its config dims can be `[1]`.

    Triton needs at least one dimension after the batch axis; without this the config
    would need a `reshape`, which the native and the CPU backend would both have to honour.
    """
    graph = model.graph
    flat = f"{name}_flat"
    for node in graph.node:
        node.output[:] = [flat if out == name else out for out in node.output]
    axes = f"{name}_axes"
    graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), axes))
    graph.node.append(helper.make_node("Unsqueeze", [flat, axes], [name], name=f"{name}_column"))
    output = next(o for o in graph.output if o.name == name)
    elem_type = output.type.tensor_type.elem_type
    graph.output.remove(output)
    graph.output.insert(0, helper.make_tensor_value_info(name, elem_type, [None, 1]))
    return model


def reshape_input(
    model: onnx.ModelProto, old: str, new: str, shape: tuple[int, ...]
) -> onnx.ModelProto:
    """Expose input `new` of per-item `shape` and flatten it into the model's input `old`."""
    graph = model.graph
    old_input = next(i for i in graph.input if i.name == old)
    elem_type = old_input.type.tensor_type.elem_type
    graph.input.remove(old_input)
    graph.input.insert(0, helper.make_tensor_value_info(new, elem_type, [None, *shape]))
    target = f"{new}_flat_shape"
    flat = int(np.prod(shape))
    graph.initializer.append(numpy_helper.from_array(np.array([-1, flat], np.int64), target))
    graph.node.insert(0, helper.make_node("Reshape", [new, target], [old], name=f"{new}_flatten"))
    return model


def finish(model: onnx.ModelProto, doc: str) -> onnx.ModelProto:
    """Pin opsets and IR version (deterministic files) and describe the model."""
    del model.opset_import[:]
    model.opset_import.extend(
        [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    )
    model.ir_version = 8
    model.producer_name = "model_build"
    model.producer_version = ""
    model.doc_string = doc
    return model

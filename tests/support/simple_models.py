"""ONNX versions of the stock `simple` examples' models of Triton's client repository, as a
user would bring them: `simple` adds and subtracts two INT32 [16] inputs; `simple_string`
does the same on BYTES inputs holding numbers as text."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

OPSET = 17


def _graph(name: str, elem: int, nodes: list[onnx.NodeProto]) -> bytes:
    def value(tensor: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(tensor, elem, ["batch", 16])

    graph = helper.make_graph(
        nodes,
        name,
        [value("INPUT0"), value("INPUT1")],
        [value("OUTPUT0"), value("OUTPUT1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def simple() -> bytes:
    """OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, INT32 [batch, 16]."""
    return _graph(
        "simple",
        TensorProto.INT32,
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
    )


def simple_string() -> bytes:
    """The same on numbers written as text (BYTES in, BYTES out)."""
    to_int = TensorProto.INT32
    return _graph(
        "simple_string",
        TensorProto.STRING,
        [
            helper.make_node("Cast", ["INPUT0"], ["a"], to=to_int),
            helper.make_node("Cast", ["INPUT1"], ["b"], to=to_int),
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Sub", ["a", "b"], ["difference"]),
            helper.make_node("Cast", ["sum"], ["OUTPUT0"], to=TensorProto.STRING),
            helper.make_node("Cast", ["difference"], ["OUTPUT1"], to=TensorProto.STRING),
        ],
    )

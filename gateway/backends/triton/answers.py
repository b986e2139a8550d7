"""Triton's answers checked before they are returned or cached.

A cached answer is served to every replica until its TTL ends, so an answer that cannot be
right (a Triton that is broken, misconfigured, or not Triton at all) must never get there.
An answer is unusable (502, and a failure of that Triton for its breaker and ejection) when:

    it names another model, or another version than the request asked for;
    an output is named twice, was not asked for, or is not one of the model's outputs;
    an output's datatype is unknown or not the model's;
    its shape is not the model's (the request's batch size, then the configured dims;
      a variable dim, -1, takes any size);
    its data does not hold as many elements as its shape says (fixed-size types: the byte
      count; BYTES: the length-prefixed elements).

The model's outputs come from its configuration (`expected_outputs`); without one (not yet
known to the catalog) only what the answer says about itself is checked. Outputs asked for
with the classification extension are BYTES of their own shape, and checked as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from gateway.errors import GatewayError
from gateway.protocol.datatypes import (
    BYTES,
    DATATYPES,
    ELEMENT_SIZES,
    decode_bytes_elements,
    element_count,
)
from gateway.protocol.types import InferRequest, InferResult, Tensor


class UnusableAnswer(GatewayError):
    """Triton answered something that cannot be this request's answer."""

    status = 502


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """One output of a model, as its configuration declares it."""

    datatype: str
    dims: tuple[int, ...]  # -1: variable


@dataclass(frozen=True, slots=True)
class ExpectedOutputs:
    """A model's outputs, and whether its first dim is the batch."""

    outputs: Mapping[str, OutputSpec]
    batched: bool


def expected_outputs(config: Mapping[str, Any]) -> ExpectedOutputs | None:
    """The outputs `config` (Triton's model configuration, as JSON) declares; None when it
    declares none (unknown yet)."""
    outputs: dict[str, OutputSpec] = {}
    raw = config.get("output")
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        datatype = str(item.get("data_type", "")).removeprefix("TYPE_")
        dims = tuple(int(d) for d in item.get("dims") or [])
        outputs[item["name"]] = OutputSpec("BYTES" if datatype == "STRING" else datatype, dims)
    if not outputs:
        return None
    return ExpectedOutputs(outputs, int(config.get("max_batch_size") or 0) > 0)


def check_answer(
    request: InferRequest, result: InferResult, expected: ExpectedOutputs | None
) -> None:
    """Raise `UnusableAnswer` unless `result` can be `request`'s answer."""
    model = request.model
    if result.model != model:
        _unusable(model, f"it names model '{result.model[:100]}'")
    if request.version and result.version != request.version:
        _unusable(model, f"it is from version {result.version[:20]}, not {request.version}")
    requested = {o.name: o for o in request.outputs}
    batch = request.inputs[0].shape[0] if request.inputs and request.inputs[0].shape else 1
    seen: set[str] = set()
    for tensor in result.outputs:
        name = tensor.name[:100]
        if tensor.name in seen:
            _unusable(model, f"output '{name}' is given twice")
        seen.add(tensor.name)
        if requested and tensor.name not in requested:
            _unusable(model, f"output '{name}' was not asked for")
        classified = tensor.name in requested and requested[tensor.name].class_count > 0
        if expected is not None and not classified:
            spec = expected.outputs.get(tensor.name)
            if spec is None:
                _unusable(model, f"output '{name}' is not one of the model's")
            _check_declared(model, tensor, spec, batch if expected.batched else None)
        _check_data(model, tensor)


def _check_declared(model: str, tensor: Tensor, spec: OutputSpec, batch: int | None) -> None:
    if tensor.datatype != spec.datatype:
        _unusable(
            model,
            f"output '{tensor.name}' is {tensor.datatype[:20]}; the model's is {spec.datatype}",
        )
    dims = spec.dims if batch is None else (batch, *spec.dims)
    shape = tensor.shape
    if len(shape) != len(dims) or any(d >= 0 and s != d for s, d in zip(shape, dims, strict=True)):
        _unusable(
            model,
            f"output '{tensor.name}' has shape {list(shape)[:10]}; expected {list(dims)} (-1: any)",
        )


def _check_data(model: str, tensor: Tensor) -> None:
    if tensor.datatype not in DATATYPES:
        _unusable(model, f"output '{tensor.name}' has unknown datatype {tensor.datatype[:20]!r}")
    if any(not isinstance(d, int) or d < 0 for d in tensor.shape):
        _unusable(model, f"output '{tensor.name}' has an invalid shape")
    count = element_count(tensor.shape)
    if tensor.datatype == BYTES:
        try:
            elements = len(decode_bytes_elements(tensor.data))
        except ValueError:
            elements = -1
        if elements != count:
            _unusable(model, f"output '{tensor.name}' does not hold {count} BYTES elements")
        return
    expected = count * ELEMENT_SIZES[tensor.datatype]
    if len(tensor.data) != expected:
        _unusable(
            model,
            f"output '{tensor.name}' has {len(tensor.data)} bytes; its shape needs {expected}",
        )


def _unusable(model: str, reason: str) -> NoReturn:
    raise UnusableAnswer(f"Triton's answer for model '{model}' cannot be used: {reason}")

"""Triton at the boundary, for unit tests: the `TritonClient` surface the gateway's parts
use (inference and the control API), answering from what a test put in it. Integration
tests use a real tritonserver instead (tests/support/tritons.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.backends.triton.answers import ExpectedOutputs
from gateway.errors import NotFound
from gateway.protocol.types import InferRequest, InferResult, Tensor


def tensor(name: str, array: NDArray[Any]) -> Tensor:
    """A tensor as Triton returns it (little-endian bytes)."""
    datatype = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}[array.dtype]
    return Tensor(name, datatype, tuple(array.shape), array.tobytes())


def labels(request: InferRequest) -> InferResult:
    """A classifier's answer: one INT64 label per row, the sum of the row's FP32 values
    (so a different input gets a different answer), from the version asked for ("1" when
    the request names none, as Triton picks its default)."""
    rows = request.inputs[0]
    values = np.frombuffer(rows.data, np.float32).reshape(rows.shape[0], -1)
    label = values.sum(axis=1, keepdims=True).astype(np.int64)
    return InferResult(request.model, request.version or "1", (tensor("label", label),), 0.002)


class FakeTritonControl:
    """Triton's control API: the index, statistics, configs and metadata a test sets."""

    def __init__(self) -> None:
        self.ready: dict[tuple[str, str], int] = {}  # (model, version) -> inference count
        self.configs: dict[str, dict[str, Any]] = {}

    async def repository_index(self) -> list[dict[str, Any]]:
        return [{"name": m, "version": v, "state": "READY"} for m, v in self.ready]

    async def model_statistics(self, model: str = "", version: str = "") -> list[dict[str, Any]]:
        return [
            {"name": m, "version": v, "inference_count": n, "execution_count": n}
            for (m, v), n in self.ready.items()
            if not model or m == model
        ]

    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        return self.configs.get(model, {"name": model})

    async def model_metadata(self, model: str, version: str = "") -> dict[str, Any]:
        if not any(m == model for m, _ in self.ready):
            raise NotFound(f"Request for unknown model: '{model}' is not found")
        return {"name": model, "versions": sorted(v for m, v in self.ready if m == model)}


class FakeTriton:
    """Inference answered by `answer` (default: `labels`), every call kept in `calls`; with
    `hold()`, calls wait until `release()`; with `failure` set, calls raise it."""

    def __init__(self, answer: Callable[[InferRequest], InferResult] = labels) -> None:
        self.control = FakeTritonControl()
        self.answer = answer
        self.calls: list[InferRequest] = []
        self.failure: Exception | None = None
        self._released: asyncio.Event | None = None

    def hold(self) -> None:
        self._released = asyncio.Event()

    def release(self) -> None:
        assert self._released is not None
        self._released.set()

    async def infer(
        self,
        request: InferRequest,
        timeout_s: float | None = None,
        expected: ExpectedOutputs | None = None,
    ) -> InferResult:
        self.calls.append(request)
        if self._released is not None:
            await self._released.wait()
        if self.failure is not None:
            raise self.failure
        return self.answer(request)

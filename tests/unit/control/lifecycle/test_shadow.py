"""Shadow traffic without sockets: how answers are compared, what a split stores, and that
mirrors are shed before they could cost live requests anything."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from gateway.control.lifecycle.shadow import Mirror, ShadowTraffic, compare_rows
from gateway.control.lifecycle.shadow_agreement import AGREEMENT, COSINE
from gateway.control.lifecycle.traffic import Shadow, TrafficSplit
from gateway.observability.metrics import Metrics
from gateway.pipeline.capacity import Capacity
from gateway.protocol.types import InferRequest, InferResult, Tensor
from tests.support.fake_triton import FakeTriton


def tensor(name: str, array: NDArray[Any]) -> Tensor:
    datatype = {"int64": "INT64", "float32": "FP32"}[str(array.dtype)]
    return Tensor(name, datatype, array.shape, array.tobytes())


def result(version: str, *tensors: Tensor) -> InferResult:
    return InferResult("m", version, tensors)


def test_labels_are_compared_row_by_row_when_a_model_has_any() -> None:
    served = result(
        "1",
        tensor("label", np.array([[0], [1], [1]], np.int64)),
        tensor("probabilities", np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]], np.float32)),
    )
    shadowed = result(
        "2",
        tensor("label", np.array([[0], [0], [1]], np.int64)),
        tensor("probabilities", np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]], np.float32)),
    )
    assert compare_rows(served, shadowed) == (AGREEMENT, [1.0, 0.0, 1.0])


def test_float_outputs_are_compared_by_cosine_per_row() -> None:
    a = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
    b = np.array([[1.0, 0.0], [0.8, 0.6]], np.float32)
    measure, values = compare_rows(
        result("1", tensor("embedding", a)), result("2", tensor("embedding", b))
    ) or ("", [])
    assert measure == COSINE
    assert values == pytest.approx([1.0, 0.96])


def test_nothing_comparable_is_no_comparison() -> None:
    served = result("1", Tensor("text", "BYTES", (1, 1), b"\x02\x00\x00\x00hi"))
    other = result("2", tensor("embedding", np.ones((1, 2), np.float32)))
    assert compare_rows(served, other) is None


def test_a_split_keeps_its_shadow_through_redis_and_mirrors_its_share() -> None:
    split = TrafficSplit({"1": 100}, shadow=Shadow("2", 25.0))
    again = TrafficSplit.from_json(split.to_json())
    assert again == split
    assert TrafficSplit.from_json(b'{"weights": {"1": 100}}').shadow is None
    drawn = sum(split.mirrors() for _ in range(4000))
    assert 800 <= drawn <= 1200  # binomial(4000, 0.25): mean 1000, sd 27
    assert not any(TrafficSplit({"1": 100}).mirrors() for _ in range(100))


class Figures:
    def __init__(self) -> None:
        self.added: list[tuple[str, str, str, str, list[float]]] = []

    def add(self, *row: Any) -> None:
        self.added.append(row)


def mirror() -> Mirror:
    request = InferRequest("m", "2", ())
    return Mirror(request, result("1", tensor("label", np.array([[1]], np.int64))), None)


def shed(metrics: Metrics) -> float:
    return float(metrics.shadow_requests.labels("m", "2", "shed")._value.get())


def test_mirrors_are_bounded_and_shed_first_when_the_worker_is_busy() -> None:
    asyncio.run(bounded_and_shed())


async def bounded_and_shed() -> None:
    triton = FakeTriton(lambda r: result(r.version, tensor("label", np.array([[1]], np.int64))))
    figures, metrics = Figures(), Metrics()
    triton.hold()
    capacity = Capacity(limit=10, per_key=0, retry_after_s=1)
    shadows = ShadowTraffic(triton, figures, metrics, capacity, max_in_flight=2)  # type: ignore[arg-type]
    for _ in range(3):
        shadows.submit(mirror())
    await asyncio.sleep(0)
    assert len(triton.calls) == 2 and shed(metrics) == 1  # two at a time
    capacity.in_flight = 5  # half the worker's capacity in live requests
    triton.release()
    await asyncio.sleep(0.01)
    assert figures.added == [("m", "2", "1", AGREEMENT, [1.0])] * 2
    shadows.submit(mirror())
    assert shed(metrics) == 2 and len(triton.calls) == 2
    shadows.submit(None)  # most answers carry no mirror
    await shadows.close()

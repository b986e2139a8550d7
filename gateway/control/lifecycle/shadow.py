"""Shadow traffic: a copy of some live requests sent to a candidate version, whose answers
are compared with the answers the clients got, as evidence for promoting it.

    a traffic split names a shadow version and a share (PUT /admin/models/m/traffic
    {"weights": {"1": 100}, "shadow": {"version": "2", "percent": 10}})
    DataPlane: a request answered by another version of the model, drawn with the share,
      not part of a sequence, not a stale answer -> a Mirror rides along with the Answer
    the transport sends the client's answer, then submits the Mirror here:
      shed first: this worker at half its GATEWAY_MAX_IN_FLIGHT, or
        GATEWAY_SHADOW_MAX_IN_FLIGHT mirrors already running -> dropped   outcome "shed"
      Triton answers the candidate (never cached)                           "compared"
        labels (integer outputs): per row, agreed or not
        floats (embeddings): per row, the cosine
      Triton fails or times out -> logged at debug, counted                 "failed"
    -> gateway_shadow_requests_total, gateway_shadow_cosine,
       gateway_shadow_label_rows_total; ShadowAgreement (Redis) for promote and
       GET /admin/models

Identical request bodies answered from this worker's memory (a replay) are not mirrored
again: they add no evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.backends.triton import TritonClient
from gateway.control.lifecycle.quality import row_agreement, row_cosines, tensor_array
from gateway.control.lifecycle.shadow_agreement import AGREEMENT, COSINE, ShadowAgreement
from gateway.errors import GatewayError
from gateway.observability.metrics import Metrics
from gateway.pipeline.capacity import Capacity
from gateway.protocol.datatypes import NUMPY_DTYPES
from gateway.protocol.types import InferRequest, InferResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mirror:
    """A request to send to the shadow version, and the answer the client got."""

    request: InferRequest  # pinned to the shadow version
    answered: InferResult
    timeout_s: float | None


class ShadowTraffic:
    """Sends mirrors to Triton in the background and records how their answers agree."""

    def __init__(
        self,
        triton: TritonClient,
        agreement: ShadowAgreement,
        metrics: Metrics,
        capacity: Capacity,
        max_in_flight: int,
    ) -> None:
        self._triton = triton
        self._agreement = agreement
        self._metrics = metrics
        self._capacity = capacity
        self._max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, mirror: Mirror | None) -> None:
        """Start `mirror` unless this worker is busy; never waits."""
        if mirror is None:
            return
        request = mirror.request
        busy = self._capacity.limit and self._capacity.in_flight * 2 >= self._capacity.limit
        if busy or len(self._tasks) >= self._max_in_flight:
            self._count(request, "shed")
            return
        task = asyncio.get_running_loop().create_task(self._compare(mirror))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _compare(self, mirror: Mirror) -> None:
        request = mirror.request
        try:
            shadowed = await self._triton.infer(request, mirror.timeout_s)
        except GatewayError as exc:
            logger.debug("shadow request to %s v%s failed: %s", request.model, request.version, exc)
            self._count(request, "failed")
            return
        except Exception:  # a background task: nothing above it would log this
            logger.exception("shadow request to %s v%s failed", request.model, request.version)
            self._count(request, "failed")
            return
        compared = compare_rows(mirror.answered, shadowed)
        if compared is None:
            self._count(request, "failed")
            return
        measure, values = compared
        self._count(request, "compared")
        label = (request.model, request.version)
        if measure == COSINE:
            histogram = self._metrics.shadow_cosine.labels(*label)
            for value in values:
                histogram.observe(value)
        else:
            agreed = int(sum(values))
            self._metrics.shadow_label_rows.labels(*label, "agreed").inc(agreed)
            self._metrics.shadow_label_rows.labels(*label, "differed").inc(len(values) - agreed)
        self._agreement.add(
            request.model, request.version, mirror.answered.version, measure, values
        )

    def _count(self, request: InferRequest, outcome: str) -> None:
        self._metrics.shadow_requests.labels(request.model, request.version, outcome).inc()


def compare_rows(answered: InferResult, shadowed: InferResult) -> tuple[str, list[float]] | None:
    """Row by row: agreement of the integer outputs (labels) if there are any, else the
    cosine of the float outputs taken together; None when nothing is comparable."""
    theirs = {tensor.name: tensor for tensor in shadowed.outputs}
    labels: list[tuple[NDArray[Any], NDArray[Any]]] = []
    floats: list[tuple[NDArray[Any], NDArray[Any]]] = []
    for tensor in answered.outputs:
        other = theirs.get(tensor.name)
        dtype = NUMPY_DTYPES.get(tensor.datatype)
        if other is None or dtype is None or other.shape != tensor.shape or not tensor.shape:
            continue
        pair = (_rows(tensor_array(tensor)), _rows(tensor_array(other)))
        (labels if np.dtype(dtype).kind in "iub" else floats).append(pair)
    if labels:
        agreed = row_agreement(np.hstack([a for a, _ in labels]), np.hstack([b for _, b in labels]))
        return AGREEMENT, [float(v) for v in agreed]
    if floats:
        cosines = row_cosines(np.hstack([a for a, _ in floats]), np.hstack([b for _, b in floats]))
        return COSINE, [float(v) for v in cosines]
    return None


def _rows(array: NDArray[Any]) -> NDArray[Any]:
    return array.reshape(array.shape[0], -1)

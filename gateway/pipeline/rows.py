"""`RowBatcher`: single-row inference calls made in one event-loop turn, sent to Triton as
batches, each row's result handed back to its caller.

The per-input cache (embeddings.py) asks for one row per input it could not find, each
from its own single-flight computation (`ResultCache.get_or_compute`); the cache's Redis
replies for a request's inputs arrive together, so the rows that miss reach the batcher in
the same turn. The first row of a turn schedules a flush for the end of the turn; rows of
the same model, version and inputs go as batches of at most the model's `max_batch_size`,
all batches at once (one round trip each). A failed batch fails each of its rows.

A row is an `InferRequest` whose every input has a batch dimension of 1. Rows of INT64
inputs of different lengths (token ids and their attention mask) are padded with zeros to
the longest row of their batch: the models this is used for pool over the attention mask,
so padding does not change a row's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.backends.triton import TritonClient
from gateway.backends.triton.answers import ExpectedOutputs
from gateway.errors import GatewayError
from gateway.protocol.datatypes import (
    BYTES,
    ELEMENT_SIZES,
    decode_bytes_elements,
    encode_bytes_elements,
)
from gateway.protocol.types import InferRequest, InferResult, Tensor

# A batch's identity: model, version, and each input's name and datatype.
_Group = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass(slots=True)
class _Row:
    request: InferRequest
    answer: asyncio.Future[InferResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class RowBatcher:
    """Batches the rows asked for in one event-loop turn."""

    def __init__(self, triton: TritonClient) -> None:
        self._triton = triton
        self._pending: dict[_Group, list[_Row]] = {}
        self._limits: dict[_Group, tuple[int, float | None, ExpectedOutputs | None]] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def infer_row(
        self,
        request: InferRequest,
        max_batch_size: int,
        timeout_s: float | None = None,
        expected: ExpectedOutputs | None = None,
    ) -> InferResult:
        """The result of one row; it goes to Triton with the other rows of this turn."""
        group = (
            request.model,
            request.version,
            tuple((tensor.name, tensor.datatype) for tensor in request.inputs),
        )
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        row = _Row(request)
        self._pending.setdefault(group, []).append(row)
        self._limits[group] = (max(1, max_batch_size), timeout_s, expected)
        return await row.answer

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for group, rows in pending.items():
            size, timeout_s, expected = self._limits.pop(group)
            for start in range(0, len(rows), size):
                chunk = rows[start : start + size]
                task = asyncio.ensure_future(self._send(chunk, timeout_s, expected))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(
        self, rows: list[_Row], timeout_s: float | None, expected: ExpectedOutputs | None
    ) -> None:
        try:
            batch = stack([row.request for row in rows])
            result = await self._triton.infer(batch, timeout_s, expected)
            answers = split(result, len(rows))
        except BaseException as exc:  # every caller hears how its batch failed
            for row in rows:
                if not row.answer.done():
                    row.answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for row, answer in zip(rows, answers, strict=True):
            if not row.answer.done():  # a caller cancelled meanwhile gets nothing
                row.answer.set_result(answer)


def stack(rows: Sequence[InferRequest]) -> InferRequest:
    """One request of `rows` (same model, version and inputs), row after row."""
    first = rows[0]
    inputs = tuple(
        _stacked([row.inputs[index] for row in rows]) for index in range(len(first.inputs))
    )
    return InferRequest(first.model, first.version, inputs, first.outputs)


def split(result: InferResult, count: int) -> list[InferResult]:
    """`count` one-row results of a batch's result."""
    columns = [_rows_of(tensor, count) for tensor in result.outputs]
    share_s = result.triton_s / count  # each row's share of Triton's time
    return [
        InferResult(result.model, result.version, tuple(c[n] for c in columns), share_s)
        for n in range(count)
    ]


def _stacked(tensors: list[Tensor]) -> Tensor:
    first = tensors[0]
    if len({t.shape for t in tensors}) == 1:  # BYTES elements carry their own lengths
        shape = (len(tensors), *first.shape[1:])
        return Tensor(first.name, first.datatype, shape, b"".join(t.data for t in tensors))
    if first.datatype != "INT64" or any(len(t.shape) != 2 for t in tensors):
        raise GatewayError(f"rows of input '{first.name}' differ in shape and cannot be padded")
    longest = max(t.shape[1] for t in tensors)
    size = ELEMENT_SIZES["INT64"]
    data = b"".join(t.data + bytes(size * (longest - t.shape[1])) for t in tensors)
    return Tensor(first.name, first.datatype, (len(tensors), longest), data)


def split_rows(request: InferRequest) -> list[InferRequest] | None:
    """`request` as one request per row of its batch, or None when it is one row, or its
    inputs do not share a batch dimension."""
    sizes = {tensor.shape[0] for tensor in request.inputs if tensor.shape}
    if len(sizes) != 1 or any(not t.shape for t in request.inputs):
        return None
    (count,) = sizes
    if count < 2:
        return None
    columns = [_rows_of(tensor, count) for tensor in request.inputs]
    return [
        InferRequest(
            request.model,
            request.version,
            tuple(column[n] for column in columns),
            request.outputs,
            parameters=request.parameters,
        )
        for n in range(count)
    ]


def joined(results: Sequence[InferResult]) -> InferResult:
    """The one-row results of a batch's rows as the batch's result."""
    first = results[0]
    outputs = tuple(
        Tensor(
            tensor.name,
            tensor.datatype,
            (len(results), *tensor.shape[1:]),
            b"".join(result.outputs[index].data for result in results),
        )
        for index, tensor in enumerate(first.outputs)
    )
    triton_s = sum(result.triton_s for result in results)
    return InferResult(first.model, first.version, outputs, triton_s)


def _rows_of(tensor: Tensor, count: int) -> list[Tensor]:
    """`tensor`'s rows, each with a batch dimension of 1."""
    if not tensor.shape or tensor.shape[0] != count:
        raise GatewayError(
            f"Triton answered output '{tensor.name}' with shape {list(tensor.shape)} "
            f"for a batch of {count}"
        )
    shape, data = (1, *tensor.shape[1:]), tensor.data
    if tensor.datatype == BYTES:
        elements = decode_bytes_elements(data)
        each = len(elements) // count
        parts = [encode_bytes_elements(elements[n * each : (n + 1) * each]) for n in range(count)]
        return [Tensor(tensor.name, BYTES, shape, part) for part in parts]
    size = len(data) // count
    return [
        Tensor(tensor.name, tensor.datatype, shape, data[n * size : (n + 1) * size])
        for n in range(count)
    ]

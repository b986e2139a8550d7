"""RowBatcher: the rows asked for in one event-loop turn go to Triton together, in batches
of the model's size, each caller getting its own row (Triton faked at its boundary)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gateway.errors import TritonUnavailable
from gateway.pipeline.rows import RowBatcher, split, stack
from gateway.protocol.types import InferRequest, InferResult, Tensor
from tests.support.fake_triton import FakeTriton, labels


def row(*values: float) -> InferRequest:
    data = np.asarray([values], np.float32)
    return InferRequest("m", "1", (Tensor("x", "FP32", data.shape, data.tobytes()),))


def label(result: InferResult) -> int:
    return int(np.frombuffer(result.outputs[0].data, np.int64)[0])


def test_a_turn_s_rows_go_together_in_batches_of_the_model_s_size() -> None:
    triton = FakeTriton()
    batcher = RowBatcher(triton)  # type: ignore[arg-type]

    async def scenario() -> list[InferResult]:
        return await asyncio.gather(*(batcher.infer_row(row(n, 1.0), 4) for n in range(10)))

    results = asyncio.run(scenario())
    assert [label(r) for r in results] == [n + 1 for n in range(10)]  # each its own row
    assert [c.inputs[0].shape for c in triton.calls] == [(4, 2), (4, 2), (2, 2)]
    assert all(r.outputs[0].shape == (1, 1) for r in results)


def test_a_failed_batch_fails_each_of_its_rows_and_no_other() -> None:
    triton = FakeTriton()
    batcher = RowBatcher(triton)  # type: ignore[arg-type]

    async def scenario() -> tuple[list[InferResult | BaseException], InferResult]:
        triton.failure = TritonUnavailable("down", 1)
        failed = await asyncio.gather(
            *(batcher.infer_row(row(n), 8) for n in range(3)), return_exceptions=True
        )
        triton.failure = None
        return failed, await batcher.infer_row(row(5.0), 8)

    failed, later = asyncio.run(scenario())
    assert all(isinstance(f, TritonUnavailable) for f in failed)
    assert label(later) == 5


def test_token_rows_of_different_lengths_are_padded_with_zeros() -> None:
    def ids(*values: int) -> InferRequest:
        data = np.asarray([values], np.int64)
        return InferRequest("enc", "1", (Tensor("input_ids", "INT64", data.shape, data.tobytes()),))

    batch = stack([ids(101, 7, 102), ids(101, 102)])
    (tensor,) = batch.inputs
    assert tensor.shape == (2, 3)
    assert np.frombuffer(tensor.data, np.int64).tolist() == [101, 7, 102, 101, 102, 0]


def test_split_refuses_an_answer_of_another_batch_size() -> None:
    answer = labels(stack([row(1.0), row(2.0)]))
    assert [label(r) for r in split(answer, 2)] == [1, 2]
    with pytest.raises(Exception, match="for a batch of 3"):
        split(answer, 3)

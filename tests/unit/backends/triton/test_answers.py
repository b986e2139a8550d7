"""Triton's answers are checked against the request and the model's outputs."""

from __future__ import annotations

import struct

import pytest

from gateway.backends.triton.answers import UnusableAnswer, check_answer, expected_outputs
from gateway.protocol.types import InferRequest, InferResult, RequestedOutput, Tensor

CONFIG = {
    "max_batch_size": 64,
    "output": [
        {"name": "label", "data_type": "TYPE_INT64", "dims": [1]},
        {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [2]},
        {"name": "tokens", "data_type": "TYPE_STRING", "dims": [-1]},
    ],
}
EXPECTED = expected_outputs(CONFIG)
REQUEST = InferRequest("m", "2", (Tensor("features", "FP32", (3, 4), b"\0" * 48),), outputs=())


def answer(*outputs: Tensor, model: str = "m", version: str = "2") -> InferResult:
    return InferResult(model, version, outputs)


GOOD = (
    Tensor("label", "INT64", (3, 1), b"\0" * 24),
    Tensor("probabilities", "FP32", (3, 2), b"\0" * 24),
    Tensor("tokens", "BYTES", (3, 1), struct.pack("<I", 0) * 3),
)


def bytes_elements(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def test_a_right_answer_passes() -> None:
    tokens = Tensor("tokens", "BYTES", (3, 2), bytes_elements(*[b"ab"] * 6))
    check_answer(REQUEST, answer(*GOOD[:2], tokens), EXPECTED)
    check_answer(REQUEST, answer(*GOOD[:2], tokens), None)  # the config not known yet


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (answer(*GOOD[:2], model="other"), "it names model 'other'"),
        (answer(*GOOD[:2], version="1"), "it is from version 1, not 2"),
        (answer(GOOD[0], GOOD[0]), "output 'label' is given twice"),
        (answer(GOOD[0], Tensor("extra", "FP32", (3, 1), b"\0" * 12)), "'extra' is not one of"),
        (
            answer(Tensor("label", "FP64", (3, 1), b"\0" * 24)),
            "'label' is FP64; the model's is INT64",
        ),
        (
            answer(Tensor("probabilities", "FP32", (2, 3), b"\0" * 24)),
            "has shape [2, 3]; expected [3, 2]",
        ),
        (
            answer(Tensor("probabilities", "FP32", (3, 2), b"\0" * 20)),
            "has 20 bytes; its shape needs 24",
        ),
        (answer(Tensor("tokens", "BYTES", (3, 1), bytes_elements(b"a"))), "does not hold 3 BYTES"),
    ],
)
def test_an_answer_that_cannot_be_right_is_unusable(result: InferResult, reason: str) -> None:
    with pytest.raises(UnusableAnswer, match="cannot be used") as refused:
        check_answer(REQUEST, result, EXPECTED)
    assert reason in refused.value.message and refused.value.status == 502


def test_outputs_not_asked_for_and_classification_outputs() -> None:
    asked = InferRequest(
        "m", "", REQUEST.inputs, outputs=(RequestedOutput("probabilities", class_count=2),)
    )
    with pytest.raises(UnusableAnswer, match="'label' was not asked for"):
        check_answer(asked, answer(GOOD[0]), EXPECTED)
    classes = Tensor("probabilities", "BYTES", (3, 2), bytes_elements(*[b"0.9:0"] * 6))
    check_answer(asked, answer(classes, version="7"), EXPECTED)  # any version: none asked


def test_expected_outputs_from_a_config() -> None:
    assert EXPECTED is not None and EXPECTED.batched
    assert EXPECTED.outputs["tokens"].datatype == "BYTES"
    assert expected_outputs({}) is None

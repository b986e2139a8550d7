"""Real inputs for the repository's models, and ONNX Runtime run in-process as the oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from sklearn.datasets import load_breast_cancer, load_digits

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = ROOT / "model_repository"

INPUT_NAMES = {"tabular_classifier": "features", "digits_classifier": "image"}
OUTPUT_NAMES = ("label", "probabilities")


def samples(model: str, rows: int = 6, offset: int = 0) -> NDArray[np.float32]:
    """`rows` real examples for `model`, as float32 with the model's per-item shape."""
    if model == "tabular_classifier":
        x = load_breast_cancer().data
        return np.ascontiguousarray(x[offset : offset + rows], dtype=np.float32)
    if model == "digits_classifier":
        x = load_digits().data.reshape(-1, 8, 8)
        return np.ascontiguousarray(x[offset : offset + rows], dtype=np.float32)
    raise ValueError(model)


def onnxruntime_outputs(model: str, version: str, x: NDArray[Any]) -> dict[str, NDArray[Any]]:
    """What ONNX Runtime gives in-process, with the thread settings of the model's config."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(REPOSITORY / model / version / "model.onnx"),
        options,
        providers=["CPUExecutionProvider"],
    )
    values = session.run(list(OUTPUT_NAMES), {INPUT_NAMES[model]: x})
    return dict(zip(OUTPUT_NAMES, values, strict=True))


def tabular_body(value: float) -> dict[str, object]:
    """A tabular_classifier request whose 30 features all hold `value`: one distinct input
    per value, for tests that need a known miss, then the same request as a hit."""
    tensor = {"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [value] * 30}
    return {"inputs": [tensor]}

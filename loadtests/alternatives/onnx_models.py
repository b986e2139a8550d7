"""The repository's models as plain ONNX Runtime sessions, for the alternatives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
MODELS = {
    "tabular_v1": ("tabular_classifier", "1"),
    "tabular": ("tabular_classifier", "2"),
    "text_embedding": ("text_encoder", "1"),
}


def session(name: str) -> ort.InferenceSession:
    model, version = MODELS[name]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2 if model == "text_encoder" else 1
    path = REPOSITORY / model / version / "model.onnx"
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class TextEncoder:
    """Tokenizer + encoder, as the text_embedding ensemble does it."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(
            str(REPOSITORY / "text_tokenizer" / "1" / "tokenizer.json")
        )
        self.tokenizer.enable_truncation(max_length=256)
        self.tokenizer.enable_padding(pad_to_multiple_of=16)
        self.session = session("text_embedding")

    def __call__(self, texts: list[str]) -> NDArray[np.float32]:
        encodings = self.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        result: NDArray[np.float32] = self.session.run(["embedding"], feeds)[0]
        return result


def as_json(value: Any) -> str:
    return json.dumps(value)

"""Triton Python-backend model `text_tokenizer`: text in, BERT token ids out.

Copied into `model_repository/text_tokenizer/1/model.py` by `gateway models build`, next to
the `tokenizer.json` of all-MiniLM-L6-v2. Each request's texts are padded to the longest,
rounded up to a multiple of 16, so requests of similar length share a shape and the
encoder's dynamic batcher can put them in one batch. Texts are truncated at 256 tokens
(the model's maximum). A text that is not UTF-8 fails its own request only.

Needs the `tokenizers` package in the Python that runs Triton's stub.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

MAX_TOKENS = 256
PAD_TO_MULTIPLE = 16


class TritonPythonModel:
    """Entry point of Triton's Python backend."""

    def initialize(self, args: dict[str, str]) -> None:
        json.loads(args["model_config"])  # validated by Triton; nothing to read from it
        path = os.path.join(args["model_repository"], args["model_version"], "tokenizer.json")
        self._tokenizer = Tokenizer.from_file(path)
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_to_multiple_of=PAD_TO_MULTIPLE)

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._tokenize(request) for request in requests]

    def _tokenize(self, request: Any) -> Any:
        values = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
        try:
            texts = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
        except UnicodeDecodeError as exc:
            message = f"input 'text' is not valid UTF-8 text: {exc}"
            code = getattr(pb_utils.TritonError, "INVALID_ARG", None)  # 400 rather than 500
            error = (
                pb_utils.TritonError(message)
                if code is None
                else pb_utils.TritonError(message, code)
            )
            return pb_utils.InferenceResponse(error=error)
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("input_ids", ids),
                pb_utils.Tensor("attention_mask", mask),
            ]
        )

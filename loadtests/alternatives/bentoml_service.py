"""BentoML serving the same ONNX files (its own venv: see loadtests/bench.py).

bentoml serve loadtests.alternatives.bentoml_service:Models --port 8200

POST /tabular_v1   {"features": [[30 floats], ...]}
POST /tabular      {"features": [[30 floats], ...]}
POST /text_embedding {"texts": ["...", ...]}
"""

from __future__ import annotations

import sys
from pathlib import Path

import bentoml
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # loadtests.* without installing
from loadtests.alternatives.onnx_models import TextEncoder, session


@bentoml.service(workers=1)
class Models:
    def __init__(self) -> None:
        self.small = session("tabular_v1")
        self.trees = session("tabular")
        self.text = TextEncoder()

    @bentoml.api
    def tabular_v1(self, features: list[list[float]]) -> dict[str, list]:
        return self._classify(self.small, features)

    @bentoml.api
    def tabular(self, features: list[list[float]]) -> dict[str, list]:
        return self._classify(self.trees, features)

    @bentoml.api
    def text_embedding(self, texts: list[str]) -> dict[str, list]:
        return {"embedding": self.text(texts).tolist()}

    @staticmethod
    def _classify(model, features: list[list[float]]) -> dict[str, list]:  # noqa: ANN001
        label, probabilities = model.run(
            ["label", "probabilities"], {"features": np.asarray(features, dtype=np.float32)}
        )
        return {"label": label.tolist(), "probabilities": probabilities.tolist()}

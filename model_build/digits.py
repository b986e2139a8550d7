"""`digits_classifier`: handwritten digit (0-9) from an 8x8 grey image with values 0-16
(scikit-learn's bundled digits data set). v1 random forest, v2 multi-layer perceptron."""

from __future__ import annotations

import numpy as np
import onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gateway.control.registry.onnx_edits import (
    ML_OPSET,
    OPSET,
    finish,
    label_as_column,
    reshape_input,
)
from model_build.build import ClassifierSpec, VersionSpec

MODEL = "digits_classifier"
INPUT = "image"
SEED = 7


def spec() -> ClassifierSpec:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.25, random_state=SEED, stratify=y
    )

    def version(estimator: ClassifierMixin, doc: str) -> onnx.ModelProto:
        fitted = estimator.fit(x_train, y_train)
        proto = to_onnx(
            fitted,
            initial_types=[("pixels", FloatTensorType([None, 64]))],
            options={"zipmap": False},
            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        )
        proto = reshape_input(label_as_column(proto), "pixels", INPUT, (8, 8))
        return finish(proto, doc)

    return ClassifierSpec(
        model=MODEL,
        input_name=INPUT,
        x_test=x_test.reshape(-1, 8, 8),
        y_test=y_test,
        versions=(
            VersionSpec(
                1,
                lambda: version(
                    RandomForestClassifier(
                        n_estimators=60, max_depth=10, random_state=SEED, n_jobs=1
                    ),
                    "random forest (60 trees, depth 10)",
                ),
            ),
            VersionSpec(
                2,
                lambda: version(
                    make_pipeline(
                        StandardScaler(),
                        MLPClassifier(
                            hidden_layer_sizes=(128, 64), max_iter=500, random_state=SEED
                        ),
                    ),
                    "standard scaling + MLP (64-128-64-10)",
                ),
            ),
        ),
    )

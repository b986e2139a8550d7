"""`tabular_classifier`: breast-cancer diagnosis from 30 numeric features (scikit-learn's
bundled Wisconsin data set). v1 logistic regression, v2 gradient boosting."""

from __future__ import annotations

import numpy as np
import onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gateway.control.registry.onnx_edits import ML_OPSET, OPSET, finish, label_as_column
from model_build.build import ClassifierSpec, VersionSpec

MODEL = "tabular_classifier"
INPUT = "features"
SEED = 42


def spec() -> ClassifierSpec:
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.25, random_state=SEED, stratify=y
    )

    def version(estimator: ClassifierMixin, doc: str) -> onnx.ModelProto:
        fitted = estimator.fit(x_train, y_train)
        proto = to_onnx(
            fitted,
            initial_types=[(INPUT, FloatTensorType([None, x.shape[1]]))],
            options={"zipmap": False},
            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        )
        return finish(label_as_column(proto), doc)

    return ClassifierSpec(
        model=MODEL,
        input_name=INPUT,
        x_test=x_test,
        y_test=y_test,
        versions=(
            VersionSpec(
                1,
                lambda: version(
                    make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
                    "standard scaling + logistic regression",
                ),
            ),
            VersionSpec(
                2,
                lambda: version(
                    GradientBoostingClassifier(n_estimators=150, max_depth=3, random_state=SEED),
                    "gradient-boosted trees (150 trees, depth 3)",
                ),
            ),
        ),
    )

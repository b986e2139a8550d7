"""Runs every model builder against a repository folder and reports what it did."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import orjson
from numpy.typing import NDArray


@dataclass(frozen=True)
class BuiltVersion:
    """One version of one model: where it is and how well it does on held-out data."""

    model: str
    version: int
    path: Path
    built: bool  # False when it already existed and was skipped
    quality: float | None  # measured on the artifact with ONNX Runtime (see quality_name)
    quality_name: str = "held-out accuracy"


@dataclass(frozen=True)
class VersionSpec:
    """How to make one version: a function returning its ONNX graph."""

    version: int
    make: Callable[[], onnx.ModelProto]


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier with its held-out data, its input name and its versions."""

    model: str
    input_name: str
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    versions: tuple[VersionSpec, ...]


def build_classifier(repository: Path, spec: ClassifierSpec, force: bool) -> list[BuiltVersion]:
    """Write each missing version of `spec` and measure every version's held-out accuracy."""
    results = []
    for version in spec.versions:
        path = repository / spec.model / str(version.version) / "model.onnx"
        built = force or not path.exists()
        if built:
            path.parent.mkdir(parents=True, exist_ok=True)
            proto = version.make()
            onnx.checker.check_model(proto, full_check=True)
            tmp = path.with_suffix(".onnx.tmp")
            onnx.save(proto, tmp)
            tmp.replace(path)  # atomic: a half-written file is never served
        results.append(
            BuiltVersion(spec.model, version.version, path, built, _accuracy(path, spec))
        )
    return results


def _accuracy(path: Path, spec: ClassifierSpec) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    label = session.run(["label"], {spec.input_name: spec.x_test})[0].reshape(-1)
    return float(np.mean(label == spec.y_test))


def build_repository(repository: Path, force: bool = False) -> list[BuiltVersion]:
    """Build every model of the project's repository into `repository`."""
    from model_build import digits, embedding, tabular

    with quiet_libraries():
        specs: Iterable[ClassifierSpec] = (tabular.spec(), digits.spec())
        results: list[BuiltVersion] = []
        for spec in specs:
            results.extend(build_classifier(repository, spec, force))
            write_probes(repository / spec.model / "probes.json", spec)
        results.extend(embedding.build(repository, force))
    return results


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """The build's own table only: no progress bars from transformers, no advice from ONNX
    Runtime's quantizer (it warns on the root logger), no deprecation chatter."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        root.setLevel(level)


def write_probes(path: Path, spec: ClassifierSpec) -> None:
    """The quality gate's probe set: the first 64 held-out examples."""
    x = spec.x_test[:64]
    tensor = {
        "name": spec.input_name,
        "datatype": "FP32",
        "shape": list(x.shape),
        "data": x.ravel().tolist(),
    }
    path.write_bytes(orjson.dumps({"inputs": [tensor], "output": "label"}))

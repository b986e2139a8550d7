"""Builds the Triton model repository (`model_repository/`) from committed, deterministic code.

Each builder trains its model with fixed seeds on a data set bundled with scikit-learn,
exports every version to ONNX, and writes `<repository>/<model>/<version>/model.onnx`.
Versions whose `model.onnx` already exists are skipped. `config.pbtxt` and label files are
committed by hand next to the versions: the repository is exactly what the NGC Triton image
expects.

This code lives in the `gateway` package rather than inside `model_repository/` because
Triton treats every folder of a repository as a model (a `__pycache__` folder there makes a
stock Triton refuse to start).
"""

from model_build.build import BuiltVersion, build_repository

__all__ = ["BuiltVersion", "build_repository"]

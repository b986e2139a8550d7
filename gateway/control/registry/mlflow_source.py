"""Versions of an MLflow Model Registry as ONNX files for `gateway models publish`.

    models:/<name>/<version>      a registered version
    models:/<name>@<alias>        the version an alias (champion, challenger...) points at

A version logged with MLflow's ONNX flavor is used as it is; one logged with the sklearn
flavor is converted with skl2onnx (needs the `models` extra) to the model config's first
input (FP32), outputs `label` and `probabilities`; any other flavor is refused, naming it.
MLflow's client is synchronous: callers run these methods in a thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import BadRequest

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


@dataclass(frozen=True)
class RegistryVersion:
    """Where a Triton version came from."""

    registered_model: str
    version: str
    run_id: str

    def as_dict(self) -> dict[str, str]:
        return {
            "registered_model": self.registered_model,
            "version": self.version,
            "run_id": self.run_id,
        }


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of a `models:/` URI; BadRequest naming the expected forms."""
    match = _URI.match(uri)
    if match is None:
        raise BadRequest(f"'{uri}' is not models:/<name>/<version> or models:/<name>@<alias>")
    return match["name"], match["version"], match["alias"]


class MlflowRegistry:
    """An MLflow tracking/registry server (or a local store such as sqlite:///mlflow.db)."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def resolve(self, uri: str) -> RegistryVersion:
        name, version, alias = parse_model_uri(uri)
        found = (
            self._client.get_model_version_by_alias(name, alias)
            if alias
            else self._client.get_model_version(name, version or "")
        )
        return RegistryVersion(name, str(found.version), found.run_id or "")

    def aliases(self, name: str) -> dict[str, str]:
        """Every alias of a registered model and the version it points at."""
        registered = self._client.get_registered_model(name)
        return {alias: str(version) for alias, version in registered.aliases.items()}

    def tag(self, version: RegistryVersion, key: str, value: str) -> None:
        self._client.set_model_version_tag(version.registered_model, version.version, key, value)

    def onnx_bytes(self, version: RegistryVersion, model_dir: Path) -> bytes:
        """The version as an ONNX file for the Triton model in `model_dir`."""
        import mlflow.artifacts
        import yaml

        uri = f"models:/{version.registered_model}/{version.version}"
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=self.tracking_uri)
        )
        flavors: dict[str, Any] = yaml.safe_load((local / "MLmodel").read_text())["flavors"]
        if "onnx" in flavors:
            return (local / str(flavors["onnx"].get("data", "model.onnx"))).read_bytes()
        if "sklearn" in flavors:
            import mlflow.sklearn

            try:
                estimator = mlflow.sklearn.load_model(str(local))
            except ImportError as exc:  # e.g. logged with skops, or without scikit-learn here
                raise BadRequest(f"{uri} cannot be loaded here: {exc}") from exc
            return _sklearn_to_onnx(estimator, model_dir)
        raise BadRequest(
            f"{uri} is logged with flavor(s) {', '.join(sorted(flavors))}; the gateway takes "
            "the onnx flavor, or sklearn (converted with skl2onnx)"
        )


def _sklearn_to_onnx(estimator: Any, model_dir: Path) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from tritonclient.grpc import model_config_pb2

    from gateway.control.lifecycle.config_file import read_config
    from gateway.control.registry.onnx_edits import ML_OPSET, OPSET, finish, label_as_column

    config = read_config(model_dir)
    first = config.input[0]
    if len(config.input) != 1 or first.data_type != model_config_pb2.TYPE_FP32:
        raise BadRequest(
            f"a scikit-learn model converts only for one FP32 input; '{config.name}' has "
            f"{len(config.input)} input(s), the first of type {first.data_type}"
        )
    width = int(first.dims[0]) if len(first.dims) == 1 else -1
    if width <= 0:
        raise BadRequest(f"input '{first.name}' of '{config.name}' is not a fixed-width vector")
    proto = to_onnx(
        estimator,
        initial_types=[(first.name, FloatTensorType([None, width]))],
        options={"zipmap": False},
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    converted = finish(label_as_column(proto), "converted from MLflow's sklearn flavor")
    return bytes(converted.SerializeToString())

"""An MLflow Model Registry drives Triton versions and traffic: a real local registry (a
SQLite store and an artifact folder made by the test, no network), a real Triton and Redis.

Registered versions: 1 and 2 are tabular_classifier's two built versions (ONNX flavor), 3 a
model that always answers "malignant" (fails the quality gate), 4 a scikit-learn pipeline
(sklearn flavor, converted by the gateway).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import mlflow.onnx
import mlflow.sklearn
import numpy as np
import onnx
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support import own_backends
from tests.support.keys import AUTH
from tests.support.polling import eventually
from tests.support.server import running_gateway
from tests.support.tabular import constant_classifier

MODEL = "tabular_classifier"
REGISTERED = "breast-cancer"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Path:
    return own_backends.writable_copy(tmp_path_factory, model_repository, "registry-models", MODEL)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Iterator[str]:
    """The tracking URI of a local registry holding the four versions."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("gateway", artifact_location=str(folder / "artifacts"))
    models = [
        onnx.load(str(model_repository / MODEL / "1" / "model.onnx")),
        onnx.load(str(model_repository / MODEL / "2" / "model.onnx")),
        onnx.load_model_from_string(constant_classifier()),
    ]
    x, y = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings():  # MLflow's own advice on logging (type hints, ...)
        warnings.simplefilter("ignore")
        for model in models:
            with mlflow.start_run(experiment_id=experiment):
                mlflow.onnx.log_model(model, name="model", registered_model_name=REGISTERED)
        with mlflow.start_run(experiment_id=experiment):
            estimator = LogisticRegression(max_iter=5000).fit(x.astype(np.float32), y)
            mlflow.sklearn.log_model(
                estimator,
                name="model",
                registered_model_name=REGISTERED,
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            )
    yield uri
    mlflow.set_tracking_uri("")


@pytest.fixture(scope="module")
def own_triton(
    tmp_path_factory: pytest.TempPathFactory, repository: Path
) -> Iterator[EmbeddedTriton]:
    server = EmbeddedTriton(repository, tmp_path_factory.mktemp("registry-triton"), models=[MODEL])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(
    own_triton: EmbeddedTriton, redis_server: EmbeddedRedis, repository: Path, registry: str
) -> Iterator[httpx.Client]:
    settings = gateway_settings(
        own_triton,
        redis_server,
        model_repository=repository,
        mlflow_tracking_uri=registry,
        mlflow_canary_percent=20,
        catalog_refresh_s=0.2,
    )
    with (
        running_gateway(settings) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=120) as client,
    ):
        yield client


def alias(registry: str, name: str, version: str | None) -> None:
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    if version is None:
        client.delete_registered_model_alias(REGISTERED, name)
    else:
        client.set_registered_model_alias(REGISTERED, name, version)


def sync(admin: httpx.Client) -> dict[str, object]:
    answer = admin.post(f"/admin/models/{MODEL}/sync", json={"registered_model": REGISTERED})
    assert answer.status_code == 200, answer.text
    report: dict[str, object] = answer.json()
    return report


def served(admin: httpx.Client, count: int) -> Counter[str]:
    x = load_breast_cancer().data.astype(np.float32)
    seen: Counter[str] = Counter()
    for n in range(count):
        tensor = {"name": "features", "shape": [1, 30], "datatype": "FP32",
                  "data": x[n % len(x)].tolist()}  # fmt: skip
        answer = admin.post(f"/v2/models/{MODEL}/infer", json={"inputs": [tensor]},
                            headers={"Cache-Control": "no-store"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        seen[answer.json()["model_version"]] += 1
    return seen


def test_aliases_drive_versions_and_traffic(admin: httpx.Client, registry: str) -> None:
    alias(registry, "champion", "1")
    first = sync(admin)
    champion = first["published"]["1"]  # type: ignore[index]
    assert first["traffic"] == {champion: 100}
    assert served(admin, 10) == Counter({champion: 10})
    listed = admin.get("/admin/models").json()["models"]
    (model,) = [m for m in listed if m["name"] == MODEL]
    (version,) = [v for v in model["versions"] if v["version"] == champion]
    assert version["registry"]["registered_model"] == REGISTERED
    assert version["registry"]["version"] == "1" and version["registry"]["run_id"]

    alias(registry, "challenger", "2")
    second = sync(admin)
    challenger = second["published"]["2"]  # type: ignore[index]
    assert second["traffic"] == {champion: 80, challenger: 20}
    split = served(admin, 200)
    assert set(split) == {champion, challenger} and 15 <= split[challenger] <= 70, split

    alias(registry, "champion", "2")  # promote: the gate passes (v2 agrees with v1)
    promoted = sync(admin)
    assert promoted["published"] == {} and promoted["traffic"] == {challenger: 100}
    assert served(admin, 10) == Counter({challenger: 10})

    alias(registry, "champion", "3")  # a bad version: the gate refuses it
    refused = sync(admin)
    assert "quality gate" in str(refused["refused"])
    tags = MlflowClient(tracking_uri=registry).get_model_version(REGISTERED, "3").tags
    assert "quality gate" in tags["gateway.quality_gate"]
    assert served(admin, 10) == Counter({challenger: 10})  # traffic stayed

    alias(registry, "champion", "1")  # rollback by alias
    alias(registry, "challenger", None)
    back = sync(admin)
    assert back["traffic"] == {champion: 100}
    assert served(admin, 10) == Counter({champion: 10})


def test_publish_from_the_registry_by_alias_and_from_the_sklearn_flavor(
    admin: httpx.Client, registry: str
) -> None:
    alias(registry, "champion", "2")
    by_alias = admin.post(
        f"/admin/models/{MODEL}/versions", json={"from": f"models:/{REGISTERED}@champion"}
    )
    assert by_alias.status_code == 201, by_alias.text
    assert by_alias.json()["registry"]["version"] == "2"
    converted = admin.post(
        f"/admin/models/{MODEL}/versions", json={"from": f"models:/{REGISTERED}/4"}
    )
    assert converted.status_code == 201, converted.text
    version = converted.json()["version"]
    x = load_breast_cancer().data.astype(np.float32)[:3]
    answer = admin.post(
        f"/v2/models/{MODEL}/versions/{version}/infer",
        json={"inputs": [{"name": "features", "shape": [3, 30], "datatype": "FP32",
                          "data": x.ravel().tolist()}]},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    bad = admin.post(f"/admin/models/{MODEL}/versions", json={"from": "models:/x"})
    assert bad.status_code == 400 and "models:/<name>/<version>" in bad.json()["error"]


def test_traffic_follows_the_aliases_by_itself_with_a_sync_loop(
    own_triton: EmbeddedTriton,
    redis_server: EmbeddedRedis,
    repository: Path,
    registry: str,
    admin: httpx.Client,
) -> None:
    settings = gateway_settings(
        own_triton,
        redis_server,
        model_repository=repository,
        mlflow_tracking_uri=registry,
        mlflow_sync={MODEL: REGISTERED},
        mlflow_sync_s=0.3,
        catalog_refresh_s=0.2,
    )
    with running_gateway(settings) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        alias(registry, "champion", "2")

        def follows() -> bool:
            (model,) = [
                m for m in client.get("/admin/models").json()["models"] if m["name"] == MODEL
            ]
            from_2 = {
                v["version"]
                for v in model["versions"]
                if v.get("registry", {}).get("version") == "2"
            }
            weights = (model["traffic"] or {}).get("weights", {})
            return list(weights.values()) == [100] and set(weights) <= from_2

        eventually(follows, timeout_s=30, what="traffic follows @champion without a sync call")

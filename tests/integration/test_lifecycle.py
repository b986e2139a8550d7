"""The model lifecycle against a real Triton, through the gateway's admin API.

This module's Triton serves a writable copy of `tabular_classifier`; its tests run in order
and build on each other's versions (publish makes 3, then 4, ...).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import onnx
import pytest
from onnx import TensorProto

from devstack import EmbeddedRedis, EmbeddedTriton
from gateway.control.lifecycle.config_file import policy_versions, read_config, versions_on_disk
from gateway.settings import Settings
from tests.integration.conftest import gateway_settings
from tests.support import own_backends
from tests.support.admin import create_key
from tests.support.data import ROOT
from tests.support.keys import ADMIN_KEY, auth_headers
from tests.support.polling import eventually
from tests.support.server import running_gateway
from tests.support.tabular import MODEL, Stream, body, constant_classifier


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Path:
    return own_backends.writable_copy(tmp_path_factory, model_repository, "lifecycle-models", MODEL)


@pytest.fixture(scope="module")
def own_triton(
    tmp_path_factory: pytest.TempPathFactory, repository: Path
) -> Iterator[EmbeddedTriton]:
    with own_backends.own_triton(repository, tmp_path_factory, "lifecycle-triton") as server:
        yield server


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with own_backends.own_redis(tmp_path_factory, "lifecycle-redis") as server:
        yield server


def settings_for(triton: EmbeddedTriton, redis_server: EmbeddedRedis, repository: Path) -> Settings:
    return gateway_settings(
        triton, redis_server, model_repository=repository, catalog_refresh_s=0.3
    )


@pytest.fixture(scope="module")
def gateway(
    own_triton: EmbeddedTriton, own_redis: EmbeddedRedis, repository: Path
) -> Iterator[str]:
    with running_gateway(settings_for(own_triton, own_redis, repository)) as url:
        yield url


@pytest.fixture
def admin(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, headers=auth_headers(), timeout=120) as client:
        yield client


def publish(admin: httpx.Client, data: bytes) -> httpx.Response:
    return admin.post(
        f"/admin/models/{MODEL}/versions",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def served_versions(client: httpx.Client, count: int, key: str | None = None) -> Counter[str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    seen: Counter[str] = Counter()
    for n in range(count):
        response = client.post(f"/v2/models/{MODEL}/infer", json=body(seed=n), headers=headers)
        assert response.status_code == 200, response.text
        seen[response.json()["model_version"]] += 1
    return seen


def test_publish_split_promote_rollback_with_a_client_streaming(
    admin: httpx.Client, gateway: str, repository: Path
) -> None:
    with Stream(gateway, auth_headers()) as stream:
        published = publish(admin, (repository / MODEL / "1" / "model.onnx").read_bytes())
        assert published.status_code == 201, published.text
        new = published.json()["version"]
        assert new == "3"
        listed = admin.get("/admin/models").json()["models"]
        (model,) = [m for m in listed if m["name"] == MODEL]
        assert {v["version"]: v["state"] for v in model["versions"]}["3"] == "READY"

        split = admin.put(f"/admin/models/{MODEL}/traffic", json={"weights": {"2": 90, "3": 10}})
        assert split.status_code == 200, split.text
        seen = served_versions(admin, 400)
        assert set(seen) == {"2", "3"}
        # binomial(400, 0.1): mean 40, sd 6; 4 sd either side
        assert 16 <= seen["3"] <= 64, seen

        promoted = admin.post(f"/admin/models/{MODEL}/promote", json={"version": "3"})
        assert promoted.status_code == 200, promoted.text
        gate = promoted.json()["quality_gate"]
        assert gate["result"] == "passed" and gate["against"] == "2"
        assert gate["measure"] == "agreement" and gate["value"] >= 0.9
        # The stream's popular requests to version 2 were replayed for version 3 first.
        warm = promoted.json()["warm_up"]
        assert (warm["from"], warm["to"]) == ("2", "3") and warm["failed"] == 0
        assert warm["computed"] + warm["cached"] >= 1
        assert served_versions(admin, 30) == Counter({"3": 30})

        back = admin.post(f"/admin/models/{MODEL}/rollback")
        assert back.status_code == 200 and back.json()["traffic"]["weights"] == {"2": 90, "3": 10}
        back = admin.post(f"/admin/models/{MODEL}/rollback")
        # publishing pinned unversioned traffic to the version serving before it
        assert back.status_code == 200 and back.json()["traffic"]["weights"] == {"2": 100}
        time.sleep(0.5)
    assert stream.errors == [] and stream.statuses[200] > 50, stream.statuses


def test_bad_files_are_rejected_and_serving_continues(
    admin: httpx.Client, repository: Path
) -> None:
    before_disk = versions_on_disk(repository / MODEL)
    before_policy = policy_versions(read_config(repository / MODEL), before_disk)
    garbage = publish(admin, b"this is not an onnx file" * 10)
    assert garbage.status_code == 400 and "not a valid ONNX model" in garbage.json()["error"]
    truncated = publish(admin, (repository / MODEL / "2" / "model.onnx").read_bytes()[:5000])
    assert truncated.status_code == 400
    model = onnx.load_model_from_string(constant_classifier())
    model.graph.input[0].name = "x"  # now the graph has an input the config does not name
    model.graph.node[0].input[0] = "x"
    wrong = publish(admin, model.SerializeToString())
    assert wrong.status_code == 400 and "'features'" in wrong.json()["error"]
    doubled = onnx.load_model_from_string(constant_classifier())
    doubled.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    mistyped = publish(admin, doubled.SerializeToString())
    assert mistyped.status_code == 400 and "TYPE_FP64" in mistyped.json()["error"]
    assert versions_on_disk(repository / MODEL) == before_disk
    assert policy_versions(read_config(repository / MODEL), before_disk) == before_policy
    assert served_versions(admin, 5)


def test_the_quality_gate_blocks_a_bad_candidate_unless_forced(admin: httpx.Client) -> None:
    published = publish(admin, constant_classifier())
    assert published.status_code == 201, published.text
    bad = published.json()["version"]
    refused = admin.post(f"/admin/models/{MODEL}/promote", json={"version": bad})
    assert refused.status_code == 409
    assert "quality gate" in refused.json()["error"] and "agreement" in refused.json()["error"]
    assert served_versions(admin, 10).keys() != {bad}
    forced = admin.post(f"/admin/models/{MODEL}/promote", json={"version": bad, "force": True})
    assert forced.status_code == 200 and forced.json()["forced"] is True
    assert served_versions(admin, 10) == Counter({bad: 10})
    assert admin.post(f"/admin/models/{MODEL}/rollback").status_code == 200


def test_a_candidate_with_half_the_traffic_is_gated_against_the_serving_version(
    admin: httpx.Client,
) -> None:
    """With the split 50/50 the candidate takes as much traffic as the serving version; the
    gate still compares it with the serving version, never with itself."""
    listed = admin.get("/admin/models").json()["models"]
    (model,) = [m for m in listed if m["name"] == MODEL]
    serving = model["traffic"]["serving"]
    published = publish(admin, constant_classifier())
    assert published.status_code == 201, published.text
    bad = published.json()["version"]
    weights = {serving: 50, bad: 50}
    assert admin.put(f"/admin/models/{MODEL}/traffic", json={"weights": weights}).is_success
    refused = admin.post(f"/admin/models/{MODEL}/promote", json={"version": bad})
    assert refused.status_code == 409, refused.text
    assert f"against version {serving}" in refused.json()["error"]
    again = admin.post(f"/admin/models/{MODEL}/promote", json={"version": serving})
    assert again.status_code == 200, again.text
    assert again.json()["quality_gate"] == {
        "result": "skipped",
        "reason": f"version {serving} already serves the traffic of '{MODEL}'",
    }
    forced = admin.post(f"/admin/models/{MODEL}/promote", json={"version": bad, "force": True})
    assert forced.json()["quality_gate"] == {"result": "skipped", "reason": "promoted with force"}
    for _ in range(2):
        assert admin.post(f"/admin/models/{MODEL}/rollback").status_code == 200
    assert admin.post(f"/admin/models/{MODEL}/rollback").status_code == 200


def test_unload_refuses_routed_versions_and_then_stops_serving(
    admin: httpx.Client, gateway: str
) -> None:
    assert (
        admin.put(f"/admin/models/{MODEL}/traffic", json={"weights": {"2": 100}}).status_code == 200
    )
    assert admin.delete(f"/admin/models/{MODEL}/versions/2").status_code == 409
    removed = admin.delete(f"/admin/models/{MODEL}/versions/3")
    assert removed.status_code == 200, removed.text
    gone = admin.post(f"/v2/models/{MODEL}/versions/3/infer", json=body())
    assert gone.status_code == 404
    assert served_versions(admin, 5) == Counter({"2": 5})


def test_split_survives_a_gateway_restart_and_sticky_keys_keep_their_version(
    admin: httpx.Client, own_triton: EmbeddedTriton, own_redis: EmbeddedRedis, repository: Path
) -> None:
    split = admin.put(
        f"/admin/models/{MODEL}/traffic", json={"weights": {"1": 50, "2": 50}, "sticky": True}
    )
    assert split.status_code == 200, split.text
    with (
        running_gateway(settings_for(own_triton, own_redis, repository)) as fresh,
        httpx.Client(base_url=fresh, headers=auth_headers(), timeout=60) as client,
    ):
        (model,) = [m for m in client.get("/admin/models").json()["models"] if m["name"] == MODEL]
        traffic = model["traffic"]
        assert traffic["weights"] == {"1": 50, "2": 50} and traffic["sticky"] is True
        versions: set[str] = set()
        for _ in range(40):  # until both versions are seen (chance of not: 2**-39)
            seen = served_versions(client, 10, key=create_key(fresh, models=["*"])[1])
            assert len(seen) == 1  # sticky: one version per key
            versions |= set(seen)
            if versions == {"1", "2"}:
                break
        assert versions == {"1", "2"}


def test_cli_mirrors_the_api(gateway: str) -> None:
    env = {**os.environ, "GATEWAY_KEY": ADMIN_KEY}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "models", *args, "--url", gateway],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = cli("list")
    assert listed.returncode == 0
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["model", "version", "state", "traffic", "reason"]
    assert any(row.split()[:3] == [MODEL, "2", "READY"] for row in rows), listed.stdout
    as_json = cli("list", "--json")
    assert MODEL in {m["name"] for m in json.loads(as_json.stdout)["models"]}
    changed = cli("traffic", MODEL, "2=100")
    assert changed.returncode == 0 and '"2": 100' in changed.stdout
    refused = cli("unload", MODEL, "2")
    assert refused.returncode == 1 and "409" in refused.stderr
    assert cli("rollback", MODEL).returncode == 0


def test_replicas_agree_on_a_change_made_through_another(
    own_triton: EmbeddedTriton,
    own_redis: EmbeddedRedis,
    repository: Path,
    model_repository: Path,
    gateway: str,
    admin: httpx.Client,
) -> None:
    """A publish through replica B: replica A serves, caches and routes to every version
    within its refresh interval, though Triton's statistics cannot show A the reload (no
    request has used the model, so its counts stay at 0)."""
    name = "replica_model"
    (repository / name).mkdir()
    config = (model_repository / MODEL / "config.pbtxt").read_text()
    (repository / name / "config.pbtxt").write_text(config.replace(MODEL, name))
    shutil.copy(model_repository / MODEL / "labels.txt", repository / name / "labels.txt")
    for version in ("1", "2"):
        shutil.copytree(model_repository / MODEL / version, repository / name / version)
    loaded = httpx.post(f"{own_triton.endpoints.http_url}/v2/repository/models/{name}/load")
    assert loaded.status_code == 200, loaded.text

    def routes(weights: dict[str, int]) -> bool:
        answer = admin.put(f"/admin/models/{name}/traffic", json={"weights": weights})
        return answer.status_code == 200

    eventually(lambda: routes({"2": 100}), timeout_s=30, what="A sees the new model")
    with running_gateway(settings_for(own_triton, own_redis, repository)) as replica_b:
        published = httpx.post(
            f"{replica_b}/admin/models/{name}/versions",
            content=(repository / name / "1" / "model.onnx").read_bytes(),
            headers={**auth_headers(), "Content-Type": "application/octet-stream"},
            timeout=120,
        )
        assert published.status_code == 201, published.text
    new = str(published.json()["version"])
    eventually(lambda: routes({"2": 50, new: 50}), timeout_s=5, what="A routes to every version")
    seeds = iter(range(1000))

    def caches(version: str) -> bool:
        """A answers a new row from Triton, then from its cache (not uncached: pending)."""
        path = f"/v2/models/{name}/versions/{version}/infer"
        row = body(seed=next(seeds))
        return [admin.post(path, json=row).headers["x-cache"] for _ in range(2)] == [
            "miss",
            "hit",
        ]

    for version in ("1", "2", new):
        eventually(partial(caches, version), timeout_s=30, what=f"A caches version {version}")

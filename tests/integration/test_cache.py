"""The result cache against a real Triton and a real Redis.

The Triton here serves a writable copy of `tabular_classifier` (so tests can add versions
and change files) and `row_sum`, whose output depends on the input's shape.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import onnx
import pytest
import redis
from onnx import TensorProto, helper

from devstack import EmbeddedRedis, EmbeddedTriton
from gateway.settings import Settings
from tests.integration.conftest import gateway_settings
from tests.support import own_backends
from tests.support.admin import create_key
from tests.support.cache_client import Answer, infer, triton_count
from tests.support.data import samples
from tests.support.keys import auth_headers
from tests.support.polling import eventually
from tests.support.server import running_gateway

TABULAR = "tabular_classifier"
ROW_SUM_CONFIG = """
name: "row_sum"
backend: "onnxruntime"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "total" data_type: TYPE_FP32 dims: [ 1 ] } ]
parameters { key: "cache_ttl_s" value: { string_value: "1" } }
"""


def build_row_sum(repository: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=1)],
        "row_sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repository / "row_sum" / "1").mkdir(parents=True)
    (repository / "row_sum" / "config.pbtxt").write_text(ROW_SUM_CONFIG)
    onnx.save(model, repository / "row_sum" / "1" / "model.onnx")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Path:
    root = own_backends.writable_copy(tmp_path_factory, model_repository, "cache-models", TABULAR)
    build_row_sum(root)
    return root


@pytest.fixture(scope="module")
def cache_triton(
    tmp_path_factory: pytest.TempPathFactory, repository: Path
) -> Iterator[EmbeddedTriton]:
    with own_backends.own_triton(repository, tmp_path_factory, "cache-triton") as server:
        yield server


@pytest.fixture(scope="module")
def cache_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with own_backends.own_redis(tmp_path_factory, "cache-redis") as server:
        yield server


def settings_for(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis, repository: Path, **extra: object
) -> Settings:
    return gateway_settings(
        triton,
        redis_server,
        model_repository=repository,
        catalog_refresh_s=0.2,
        redis_breaker_reset_s=0.5,
        **extra,
    )


@pytest.fixture(scope="module")
def gateway(
    cache_triton: EmbeddedTriton, cache_redis: EmbeddedRedis, repository: Path
) -> Iterator[str]:
    with running_gateway(settings_for(cache_triton, cache_redis, repository)) as url:
        yield url


@pytest.fixture(autouse=True)
def empty_cache(gateway: str) -> None:
    response = httpx.delete(f"{gateway}/admin/cache", headers=auth_headers())
    assert response.status_code == 200


def features(row: int = 0) -> dict[str, npt.NDArray[np.float32]]:
    return {"features": samples(TABULAR, rows=1, offset=row)}


def test_a_miss_then_a_hit_with_identical_output(gateway: str) -> None:
    first = infer(gateway, TABULAR, features(1), request_id="one")
    second = infer(gateway, TABULAR, features(1), request_id="two")
    assert (first.cache, second.cache) == ("miss", "hit")
    assert first.outputs == second.outputs and first.version == second.version == "2"
    assert (first.body["id"], second.body["id"]) == ("one", "two")


def test_json_and_binary_requests_of_the_same_tensors_share_an_entry(gateway: str) -> None:
    as_json = infer(gateway, TABULAR, features(2), version="1")
    as_binary = infer(gateway, TABULAR, features(2), version="1", binary=True)
    binary_outputs = infer(
        gateway,
        TABULAR,
        features(2),
        version="1",
        outputs=[
            {"name": "label", "parameters": {"binary_data": True}},
            {"name": "probabilities", "parameters": {"binary_data": True}},
        ],
    )
    assert (as_json.cache, as_binary.cache) == ("miss", "hit")
    assert binary_outputs.cache == "miss"  # naming outputs is a different request...
    again = infer(
        gateway,
        TABULAR,
        features(2),
        version="1",
        binary=True,
        outputs=[{"name": "label"}, {"name": "probabilities"}],
    )
    assert again.cache == "hit"  # ...but their encoding is not part of the key
    assert as_json.outputs == as_binary.outputs
    np.testing.assert_array_equal(  # float32 both ways: binary bytes vs shortest JSON repr
        np.asarray(binary_outputs.outputs["probabilities"], np.float32),
        np.asarray(as_json.outputs["probabilities"], np.float32),
    )


def test_unversioned_and_explicit_latest_version_share_an_entry(gateway: str) -> None:
    assert infer(gateway, TABULAR, features(3)).cache == "miss"
    assert infer(gateway, TABULAR, features(3), version="2").cache == "hit"
    assert infer(gateway, TABULAR, features(3), version="1").cache == "miss"


def test_same_bytes_with_another_shape_or_datatype_miss(gateway: str) -> None:
    x = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    flat = infer(gateway, "row_sum", {"x": x})
    square = infer(gateway, "row_sum", {"x": x.reshape(2, 2)})
    assert (flat.cache, square.cache) == ("miss", "miss")
    assert flat.outputs["total"] == [10.0] and square.outputs["total"] == [3.0, 7.0]
    as_int = infer(gateway, "row_sum", {"x": x.view(np.int32)})  # the same bytes
    assert as_int.status == 400 and as_int.cache is None  # Triton refuses it: not served from cache


def test_entries_expire_with_the_models_ttl(gateway: str) -> None:
    x = {"x": np.array([[5.0, 6.0]], dtype=np.float32)}
    assert infer(gateway, "row_sum", x).cache == "miss"
    assert infer(gateway, "row_sum", x).cache == "hit"
    time.sleep(1.2)  # row_sum's config says cache_ttl_s 1
    assert infer(gateway, "row_sum", x).cache == "miss"


def test_no_cache_and_no_store(gateway: str, cache_triton: EmbeddedTriton) -> None:
    before = triton_count(cache_triton.endpoints.metrics_url, TABULAR, "2")
    no_store = infer(gateway, TABULAR, features(4), headers={"Cache-Control": "no-store"})
    assert no_store.cache == "bypass"
    assert infer(gateway, TABULAR, features(4)).cache == "miss"  # nothing was stored
    assert infer(gateway, TABULAR, features(4)).cache == "hit"
    no_cache = infer(gateway, TABULAR, features(4), headers={"Cache-Control": "no-cache"})
    assert no_cache.cache == "bypass"  # asked Triton despite the entry
    assert triton_count(cache_triton.endpoints.metrics_url, TABULAR, "2") == before + 3

    fresh = infer(gateway, TABULAR, features(5), headers={"Cache-Control": "no-cache"})
    assert fresh.cache == "bypass"
    assert infer(gateway, TABULAR, features(5)).cache == "hit"  # no-cache stored its answer


def test_errors_are_never_cached(gateway: str, cache_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(cache_redis.url)
    bad = {"features": np.zeros((1, 29), dtype=np.float32)}
    for _ in range(2):
        answer = infer(gateway, TABULAR, bad)
        assert answer.status == 400 and "features" in answer.body["error"]
        assert answer.cache is None
    assert list(client.scan_iter(match="gateway:cache:*")) == []


def test_fifty_concurrent_identical_cold_requests_cost_triton_one_inference(
    gateway: str, cache_triton: EmbeddedTriton, cache_redis: EmbeddedRedis, repository: Path
) -> None:
    metrics = cache_triton.endpoints.metrics_url
    x = features(6)
    before = triton_count(metrics, TABULAR, "2")
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: infer(gateway, TABULAR, x), range(50)))
    assert {a.status for a in answers} == {200}
    assert len({json.dumps(a.outputs) for a in answers}) == 1
    assert triton_count(metrics, TABULAR, "2") == before + 1
    outcomes = [a.cache for a in answers]
    assert outcomes.count("miss") == 1 and set(outcomes) <= {"miss", "coalesced", "hit"}

    # Two gateway processes' worth of caches: the Redis lock makes it one inference still.
    settings = settings_for(cache_triton, cache_redis, repository)
    with running_gateway(settings) as other:
        y = features(7)
        before = triton_count(metrics, TABULAR, "2")
        urls = [gateway, other] * 25
        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(lambda url: infer(url, TABULAR, y), urls))
        assert {a.status for a in answers} == {200}
        assert triton_count(metrics, TABULAR, "2") == before + 1


def test_forged_or_corrupted_entries_in_redis_are_ignored(
    cache_triton: EmbeddedTriton, cache_redis: EmbeddedRedis, repository: Path
) -> None:
    settings = settings_for(cache_triton, cache_redis, repository, cache_local_max_bytes=0)
    client = redis.Redis.from_url(cache_redis.url)
    with running_gateway(settings) as url:
        genuine = infer(url, TABULAR, features(8), version="1")
        other = infer(url, TABULAR, features(9), version="1")
        assert infer(url, TABULAR, features(8), version="1").cache == "hit"
        keys = sorted(client.scan_iter(match="gateway:cache:tabular_classifier:1:*"))
        assert len(keys) == 2
        first, second = keys
        entry = client.get(first)
        assert isinstance(entry, bytes)
        fresh = 3_600_000  # ms: a life beyond the stale-if-error grace, so these are fresh
        # 1. a flipped byte in the data
        corrupted = bytearray(entry)
        corrupted[60] ^= 0xFF
        client.set(first, bytes(corrupted), px=fresh)
        client.set(second, entry, px=fresh)  # 2. another key's entry
        answers = [infer(url, TABULAR, features(row), version="1") for row in (8, 9)]
        assert [a.cache for a in answers] == ["miss", "miss"]
        assert answers[0].outputs == genuine.outputs and answers[1].outputs == other.outputs
        # The misses' stores go out after their answers: wait for both entries to be back.
        eventually(
            lambda: client.get(first) != bytes(corrupted) and client.get(second) != entry, 10
        )
        # 3. a made-up entry (under both keys: which key is row 8's depends on the digest)
        for key in keys:
            client.set(key, b"GWC1" + b"\x00" * 200, px=fresh)
        assert infer(url, TABULAR, features(8), version="1").cache == "miss"
        text = httpx.get(f"{url}/metrics").text
        assert 'gateway_cache_verification_failures_total{model="tabular_classifier"} 3.0' in text


def test_purge_by_version_model_and_everything(gateway: str) -> None:
    infer(gateway, TABULAR, features(10), version="1")
    infer(gateway, TABULAR, features(10), version="2")
    infer(gateway, "row_sum", {"x": np.ones((1, 3), np.float32)})
    purged = httpx.delete(
        f"{gateway}/admin/cache/models/{TABULAR}/versions/1", headers=auth_headers()
    )
    assert purged.status_code == 200 and purged.json()["deleted"] == 1
    assert infer(gateway, TABULAR, features(10), version="1").cache == "miss"
    assert infer(gateway, TABULAR, features(10), version="2").cache == "hit"
    assert (
        httpx.delete(f"{gateway}/admin/cache/models/{TABULAR}", headers=auth_headers()).json()[
            "deleted"
        ]
        == 2
    )
    assert infer(gateway, TABULAR, features(10), version="2").cache == "miss"
    assert infer(gateway, "row_sum", {"x": np.ones((1, 3), np.float32)}).cache == "hit"
    assert httpx.delete(f"{gateway}/admin/cache", headers=auth_headers()).json()["deleted"] >= 1
    assert infer(gateway, "row_sum", {"x": np.ones((1, 3), np.float32)}).cache == "miss"
    _, key = create_key(gateway, models=["*"])
    assert (
        httpx.delete(
            f"{gateway}/admin/cache", headers={"Authorization": f"Bearer {key}"}
        ).status_code
        == 403
    )


def test_private_tenant_caches_are_separate(gateway: str) -> None:
    _, shared = create_key(gateway, models=["*"])
    _, team_a = create_key(gateway, models=["*"], tenant="team-a", private_cache=True)
    _, team_a_2 = create_key(gateway, models=["*"], tenant="team-a", private_cache=True)

    def ask(key: str) -> Answer:
        return infer(gateway, TABULAR, features(11), headers={"Authorization": f"Bearer {key}"})

    assert ask(shared).cache == "miss"
    assert ask(team_a).cache == "miss"  # not the shared entry
    assert ask(team_a_2).cache == "hit"  # the tenant's own entry
    assert ask(shared).cache == "hit"


def test_a_new_version_is_served_as_soon_as_it_is_loaded(
    gateway: str, cache_triton: EmbeddedTriton, repository: Path
) -> None:
    x = features(12)
    v1_answer = infer(gateway, TABULAR, x, version="1").outputs
    old = infer(gateway, TABULAR, x)
    assert (old.cache, old.version) == ("miss", "2")
    assert infer(gateway, TABULAR, x).cache == "hit"
    # version 3: v1's artifact (so its answers differ from v2's)
    shutil.copytree(repository / TABULAR / "1", repository / TABULAR / "3")
    try:
        load = httpx.post(
            f"{cache_triton.endpoints.http_url}/v2/repository/models/{TABULAR}/load", json={}
        )
        assert load.status_code == 200
        eventually(lambda: infer(gateway, TABULAR, x).version == "3")
        new = infer(gateway, TABULAR, x, version="3")
        assert new.outputs == v1_answer and new.outputs != old.outputs
        # the policy keeps the newest two versions: version 1 is gone, not served from cache
        assert infer(gateway, TABULAR, x, version="1").status == 404
    finally:
        shutil.rmtree(repository / TABULAR / "3")
        httpx.post(
            f"{cache_triton.endpoints.http_url}/v2/repository/models/{TABULAR}/load", json={}
        )
        eventually(lambda: infer(gateway, TABULAR, x).version == "2")


def test_a_model_changed_and_reloaded_under_the_same_version_is_never_answered_from_old_entries(
    gateway: str, cache_triton: EmbeddedTriton, repository: Path
) -> None:
    x = features(13)
    version_2 = repository / TABULAR / "2" / "model.onnx"
    original = version_2.read_bytes()
    old = infer(gateway, TABULAR, x, version="2")
    v1_answer = infer(gateway, TABULAR, x, version="1").outputs
    assert old.outputs != v1_answer
    try:
        shutil.copy(repository / TABULAR / "1" / "model.onnx", version_2)
        time.sleep(0.5)  # edited but not loaded: Triton and the cache still agree on the old model
        assert infer(gateway, TABULAR, x, version="2").outputs == old.outputs
        load = httpx.post(
            f"{cache_triton.endpoints.http_url}/v2/repository/models/{TABULAR}/load", json={}
        )
        assert load.status_code == 200

        def cached_from_the_new_model() -> bool:
            # Triton may serve the new files a refresh before the catalog adopts them; until
            # then the version is served uncached (bypass), and adopting purges its entries.
            answer = infer(gateway, TABULAR, x, version="2")
            return answer.outputs == v1_answer and answer.cache != "bypass"

        eventually(cached_from_the_new_model)
        after = infer(gateway, TABULAR, x, version="2")
        assert after.outputs == v1_answer and after.cache == "hit"  # the new model's own entry
    finally:
        version_2.write_bytes(original)
        httpx.post(
            f"{cache_triton.endpoints.http_url}/v2/repository/models/{TABULAR}/load", json={}
        )
        eventually(lambda: infer(gateway, TABULAR, x, version="2").outputs == old.outputs)


def test_killing_redis_mid_stream_fails_no_request(
    cache_triton: EmbeddedTriton, tmp_path: Path, repository: Path
) -> None:
    """Redis dies after 40 requests: nothing fails. Inputs seen before keep coming from the
    in-process tier (its TTL set to outlive this test even on a slow machine); inputs never
    seen before are misses answered by Triton, and the cache's breaker opens."""
    doomed = EmbeddedRedis(tmp_path, persistent=False)
    doomed.start()
    settings = settings_for(cache_triton, doomed, repository, cache_local_ttl_s=600.0)
    try:
        with running_gateway(settings) as url:
            answers = [infer(url, TABULAR, features(index % 7)) for index in range(40)]
            assert [a.status for a in answers] == [200] * 40
            assert [a.cache for a in answers] == ["miss"] * 7 + ["hit"] * 33
            doomed.stop()  # SIGTERM to the process group; gone at once
            for index in range(40, 120):
                seen = index % 2 == 0
                row = index % 7 if seen else 100 + index  # a repeat, or a new input
                answer = infer(url, TABULAR, features(row))
                assert answer.status == 200, answer.body
                assert answer.cache == ("hit" if seen else "miss"), (index, answer.cache)
            text = httpx.get(f"{url}/metrics").text
            assert 'gateway_degraded{dependency="cache_circuit"} 1.0' in text
    finally:
        doomed.stop()

"""Two `gateway serve` processes, two Tritons and a 3-primary Redis Cluster; and a gateway on a
Sentinel-watched Redis that fails over.

On the cluster: keys, rate limits, cache hits and single-flight across gateways, purges and
revocations reaching both; a cluster primary killed fails no request, and caching in it
resumes once it is back. With Sentinel: the primary killed fails no request.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import EmbeddedTriton
from devstack.redis_cluster import EmbeddedRedisCluster, EmbeddedSentinel
from tests.support.keys import AUTH
from tests.support.polling import eventually
from tests.support.serve import gateway_serve
from tests.support.tritons import running_tritons, triton_urls

MODEL = "tabular_classifier"
PATH = f"/v2/models/{MODEL}/infer"


@pytest.fixture(scope="module")
def tritons(
    tmp_path_factory: pytest.TempPathFactory, model_repository: Path
) -> Iterator[list[EmbeddedTriton]]:
    with running_tritons(model_repository, tmp_path_factory, "rtriton", [MODEL]) as servers:
        yield servers


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisCluster]:
    redis_cluster = EmbeddedRedisCluster(tmp_path_factory.mktemp("cluster"), primaries=3)
    try:
        redis_cluster.start()
        yield redis_cluster
    finally:
        redis_cluster.stop()


def environment(tritons: list[EmbeddedTriton], redis_url: str) -> dict[str, str]:
    return {
        "GATEWAY_TRITON_URLS": triton_urls(tritons),
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_TRITON_PROBE_S": "0.25",
        "GATEWAY_CACHE_LOCAL_TTL_S": "30",
    }


@pytest.fixture(scope="module")
def gateways(
    tritons: list[EmbeddedTriton],
    cluster: EmbeddedRedisCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[str]]:
    env = environment(tritons, cluster.url)
    with (
        gateway_serve(tritons[0], cluster.nodes[0], tmp_path_factory.mktemp("ga"), 1, env=env) as a,
        gateway_serve(tritons[0], cluster.nodes[0], tmp_path_factory.mktemp("gb"), 1, env=env) as b,
    ):
        yield [a.url, b.url]


def body(x: float) -> dict[str, object]:
    return {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32",
                        "data": [x] * 30}]}  # fmt: skip


def new_key(gateway: str, **limits: float) -> tuple[str, dict[str, str]]:
    document = {"name": "scale-out", "models": ["*"], **limits}
    created = httpx.post(f"{gateway}/admin/keys", json=document, headers=AUTH)
    assert created.status_code == 201, created.text
    return created.json()["id"], {"Authorization": f"Bearer {created.json()['key']}"}


def test_keys_limits_cache_and_single_flight_are_shared_across_gateways(
    gateways: list[str],
) -> None:
    a, b = gateways
    _, headers = new_key(a)
    first = httpx.post(f"{a}{PATH}", json=body(71.5), headers=headers)
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    second = httpx.post(f"{b}{PATH}", json=body(71.5), headers=headers)  # a key made on A
    assert second.status_code == 200 and second.headers["x-cache"] == "hit"
    assert second.json()["outputs"] == first.json()["outputs"]

    # Single flight across gateways: one new input sent 8 times at once to both.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda n: httpx.post(f"{gateways[n % 2]}{PATH}", json=body(72.5), headers=headers),
                range(8),
            )
        )
    assert {r.status_code for r in answers} == {200}
    assert Counter(r.headers["x-cache"] for r in answers)["miss"] == 1

    # One rate limit over both gateways (GCRA in the cluster): a burst of 2, then 429.
    _, limited = new_key(a, rate_limit_per_second=0.1, burst=2)
    statuses = [httpx.post(f"{g}{PATH}", json=body(73.5), headers=limited).status_code
                for g in (a, b, a, b)]  # fmt: skip
    assert statuses == [200, 200, 429, 429]


def test_purges_and_revocations_reach_every_gateway(gateways: list[str]) -> None:
    a, b = gateways
    key_id, headers = new_key(a)
    for gateway in (a, b, b):
        assert httpx.post(f"{gateway}{PATH}", json=body(81.5), headers=headers).status_code == 200
    assert httpx.post(f"{b}{PATH}", json=body(81.5), headers=headers).headers["x-cache"] == "hit"
    purged = httpx.delete(f"{a}/admin/cache/models/{MODEL}", headers=AUTH)
    assert purged.status_code == 200, purged.text
    eventually(
        lambda: (
            httpx.post(f"{b}{PATH}", json=body(81.5), headers=headers).headers["x-cache"] == "miss"
        ),
        what="B drops its copy after a purge on A",
    )
    assert httpx.delete(f"{a}/admin/keys/{key_id}", headers=AUTH).status_code == 200
    eventually(
        lambda: httpx.post(f"{b}{PATH}", json=body(82.5), headers=headers).status_code == 401,
        timeout_s=3,
        what="B refuses a key revoked on A (announced, not waited out)",
    )


def stream_until(stop: threading.Event, gateways: list[str], headers: dict[str, str],
                 statuses: Counter[int]) -> None:  # fmt: skip
    n = 0
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            n += 1
            x = 90000.0 + (n % 7 if n % 2 else n)  # hits and misses
            gateway = gateways[n % len(gateways)]
            statuses[
                client.post(f"{gateway}{PATH}", json=body(x), headers=headers).status_code
            ] += 1


def test_a_cluster_primary_killed_fails_no_request_and_caching_resumes(
    gateways: list[str], cluster: EmbeddedRedisCluster
) -> None:
    _, headers = new_key(gateways[0])
    assert httpx.post(f"{gateways[1]}{PATH}", json=body(1.0), headers=headers).status_code == 200
    statuses: Counter[int] = Counter()
    stop = threading.Event()
    thread = threading.Thread(target=stream_until, args=(stop, gateways, headers, statuses))
    thread.start()
    victim = cluster.nodes[1]
    try:
        eventually(lambda: sum(statuses.values()) > 50)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = sum(statuses.values())
        eventually(lambda: sum(statuses.values()) > killed_at + 200, timeout_s=60)
        victim.restart()  # same port and node id (nodes.conf): it rejoins with its slots
        cluster_ok = sum(statuses.values())
        eventually(lambda: sum(statuses.values()) > cluster_ok + 100, timeout_s=60)
    finally:
        stop.set()
        thread.join(30)
    assert set(statuses) == {200}, statuses

    def shared_again() -> bool:  # a new entry made on A is a hit on B
        x = 95000.0 + sum(statuses.values()) + len(statuses)
        statuses[0] += 1  # a fresh input each try
        httpx.post(f"{gateways[0]}{PATH}", json=body(x), headers=headers)
        answer = httpx.post(f"{gateways[1]}{PATH}", json=body(x), headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.headers["x-cache"] == "hit"

    eventually(shared_again, timeout_s=30, what="caching through the cluster resumes")


def test_a_sentinel_failover_fails_no_request(
    tritons: list[EmbeddedTriton], tmp_path_factory: pytest.TempPathFactory
) -> None:
    sentinel = EmbeddedSentinel(tmp_path_factory.mktemp("sentinel"))
    sentinel.start()
    try:
        env = environment(tritons, sentinel.url)
        state = tmp_path_factory.mktemp("gs")
        with gateway_serve(tritons[0], sentinel.primary, state, 1, env=env) as served:
            _, headers = new_key(served.url)
            statuses: Counter[int] = Counter()
            stop = threading.Event()
            thread = threading.Thread(
                target=stream_until, args=(stop, [served.url], headers, statuses)
            )
            thread.start()
            try:
                eventually(lambda: sum(statuses.values()) > 50)
                assert sentinel.primary.pid is not None
                os.kill(sentinel.primary.pid, signal.SIGKILL)
                eventually(
                    lambda: sentinel.primary_port() == sentinel.replica.port,
                    timeout_s=60,
                    what="the Sentinel promotes the replica",
                )
                promoted = sum(statuses.values())
                eventually(lambda: sum(statuses.values()) > promoted + 100, timeout_s=60)
            finally:
                stop.set()
                thread.join(30)
            assert set(statuses) == {200}, statuses
            # The gateway writes to the new primary: a key made now works.
            _, fresh = new_key(served.url)
            assert (
                httpx.post(f"{served.url}{PATH}", json=body(2.0), headers=fresh).status_code == 200
            )
    finally:
        sentinel.stop()

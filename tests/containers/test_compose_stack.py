"""The Compose stack from zero with podman: the gateway, models and CPU Triton images built
on a local Debian base, the secrets made, the `models` volume seeded as uid 10001, Triton
and Redis (with its password) started, two gateway replicas with read-only root file
systems; inference through both, each replica restarted in turn under a steady client with
no failed request, then Triton stopped: cache hits still served and readiness still 200.

Skipped, with the reason, where podman or mmdebstrap is missing (they are not part of the
test dependencies: `apt-get install podman runc mmdebstrap`). The first run builds the
images from nothing (the models image trains every model); podman's layer cache makes the
next ones quick.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devstack.ports import free_port
from tests.support.balancer import ReadinessBalancer, ready
from tests.support.containers import ComposeStack, build_images, run, unavailable
from tests.support.data import tabular_body
from tests.support.polling import eventually

REASON = unavailable()
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=f"containers: {REASON}"),
    pytest.mark.timeout(3600),
]
MODEL_PATH = "/v2/models/tabular_classifier/infer"
STARTUP_S = 300  # Triton loads every model of the repository, the text encoder included


@dataclass
class Stack:
    compose: ComposeStack
    urls: list[str]
    key: str
    secrets: Path = field(default_factory=Path)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def triton_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/triton", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    build_images(tmp_path_factory.mktemp("bases"))
    ports = {name: free_port() for name in ("GATEWAY_1_PORT", "GATEWAY_2_PORT")}
    ports |= {name: free_port() for name in ("GATEWAY_1_GRPC_PORT", "GATEWAY_2_GRPC_PORT")}
    compose = ComposeStack(
        tmp_path_factory.mktemp("compose"), f"gwtest{uuid.uuid4().hex[:8]}", ports
    )
    secrets = compose.make_secrets()
    try:
        # In dependency order, each without its dependencies: the tracing and dashboard
        # services' images (Jaeger, the collector, Grafana) cannot be pulled here.
        compose.compose("up", "-d", "--no-deps", "redis")
        eventually(lambda: _healthy(compose.container("redis")), timeout_s=60, what="Redis answers")
        compose.compose("up", "-d", "--no-deps", "models-cpu")
        seeding = run(["podman", "wait", compose.container("models-cpu")], 300)
        assert seeding.strip() == "0", run(["podman", "logs", compose.container("models-cpu")], 60)
        compose.compose("up", "-d", "--no-deps", "triton-cpu", "gateway-1", "gateway-2")
        urls = [f"http://127.0.0.1:{ports[f'GATEWAY_{n}_PORT']}" for n in (1, 2)]
        for url in urls:
            eventually(lambda u=url: triton_ready(u), STARTUP_S, f"{url} sees Triton ready")  # type: ignore[misc]
            eventually(lambda u=url: ready(u), 60, f"{url} is ready")  # type: ignore[misc]
        key = (secrets / "gateway_admin_key").read_text().strip()
        yield Stack(compose, urls, key, secrets)
    finally:
        compose.down()


def _healthy(container: str) -> bool:
    check = ["podman", "healthcheck", "run", container]
    try:
        run(check, 30)
    except AssertionError:
        return False
    return True


def test_the_stack_from_zero_serves_through_both_replicas(stack: Stack) -> None:
    assert {p.name for p in stack.secrets.iterdir()} >= {
        "gateway_key_pepper", "gateway_cache_secret", "gateway_admin_key",
        "gateway_redis_url", "redis_auth_conf",
    }  # fmt: skip
    for service in ("gateway-1", "gateway-2"):
        container = stack.compose.container(service)
        read_only = run(["podman", "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}",
                         container], 60)  # fmt: skip
        assert read_only.strip() == "true", service
    stat = "import os; print(os.stat('/models/tabular_classifier/1').st_uid)"
    owner = run(["podman", "exec", stack.compose.container("gateway-1"), "python3", "-c", stat], 60)
    assert owner.strip() == "10001"  # seeded by the models image's unprivileged user
    for n, url in enumerate(stack.urls):
        response = httpx.post(
            f"{url}{MODEL_PATH}", json=tabular_body(100.0 + n), headers=stack.headers, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["name"]
    # Redis requires its password: without it, nothing.
    refused = run(["podman", "exec", stack.compose.container("redis"), "redis-cli", "ping"], 30)
    assert "NOAUTH" in refused


def test_each_replica_restarts_in_turn_under_a_steady_client_with_no_failed_request(
    stack: Stack,
) -> None:
    balancer = ReadinessBalancer(stack.urls)
    outcomes: Counter[str] = Counter()
    served: Counter[str] = Counter()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(headers=stack.headers, timeout=30) as http:
            n = 0
            while not stop.is_set():
                url = balancer.pick()
                try:
                    status = http.post(f"{url}{MODEL_PATH}", json=tabular_body(n % 40)).status_code
                    outcomes[str(status)] += 1
                    served[url] += status == 200
                except httpx.TransportError as error:
                    outcomes[type(error).__name__] += 1
                n += 1

    thread = threading.Thread(target=client)
    thread.start()
    try:
        for service, url in zip(("gateway-1", "gateway-2"), stack.urls, strict=True):
            before = served[url]
            run(["podman", "restart", "--time", "60", stack.compose.container(service)], 180)
            eventually(lambda u=url: ready(u), 120, f"{service} is ready again")  # type: ignore[misc]
            eventually(lambda u=url, b=before: served[u] > b + 5, 60, f"{service} serves")  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(60)
        balancer.close()
    assert set(outcomes) == {"200"}, outcomes
    assert outcomes["200"] > 50


def test_with_triton_stopped_cache_hits_are_served_and_the_replicas_stay_ready(
    stack: Stack,
) -> None:
    seen = tabular_body(7.5)
    for url in stack.urls:  # in the cache (Redis, and each replica's own tier)
        assert httpx.post(f"{url}{MODEL_PATH}", json=seen, headers=stack.headers).status_code == 200
    run(["podman", "stop", "--time", "10", stack.compose.container("triton-cpu")], 120)
    for url in stack.urls:
        eventually(lambda u=url: not triton_ready(u), 30, f"{url} sees Triton gone")  # type: ignore[misc]
        hit = httpx.post(f"{url}{MODEL_PATH}", json=seen, headers=stack.headers, timeout=30)
        assert hit.status_code == 200 and hit.headers["x-cache"] == "hit", hit.text
        assert ready(url)  # still in rotation: the cache answers
        unseen = httpx.post(f"{url}{MODEL_PATH}", json=tabular_body(-3.25), headers=stack.headers)
        assert unseen.status_code == 503  # nothing to answer with

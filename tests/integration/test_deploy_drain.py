"""A rolling restart of the deployed gateway drops no request.

Two `gateway serve` processes run with the deployment's own command and environment (the
Compose service's `command`, deploy/kubernetes/base/gateway.env; only addresses, paths and
secrets are the test's). Clients stream inferences over keep-alive connections through a
balancer that does what a Kubernetes Service does: a new connection goes to a backend whose
readiness probe passed last. Each gateway in turn gets SIGTERM and is replaced on its port:
readiness must turn 503 at once, connections must be closed after their response, it must
exit within its grace period, and the clients must see no failed request.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from devstack import EmbeddedRedis, EmbeddedTriton
from devstack.ports import free_port
from tests.support import own_backends
from tests.support.admin import create_key
from tests.support.balancer import ReadinessBalancer
from tests.support.deploy import gateway_command, gateway_env
from tests.support.keys import ADMIN_KEY
from tests.support.polling import eventually
from tests.support.serve import Served, gateway_serve

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = gateway_env()
DRAIN_S = float(DEPLOYED["GATEWAY_DRAIN_DELAY_S"])
GRACE_S = float(DEPLOYED["GATEWAY_SHUTDOWN_GRACE_S"])
STOP_BOUND_S = DRAIN_S + 2 * GRACE_S + 10  # what the pod's grace period must cover


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with own_backends.own_redis(tmp_path_factory, "drain-redis") as server:
        yield server


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory, own_redis: EmbeddedRedis) -> Path:
    """What the deployment mounts at /run/secrets (Redis's URL among them: it carries the
    password)."""
    folder = tmp_path_factory.mktemp("secrets")
    (folder / "gateway_key_pepper").write_text("p" * 64 + "\n")
    (folder / "gateway_cache_secret").write_text("c" * 64 + "\n")
    (folder / "gateway_admin_key").write_text(ADMIN_KEY + "\n")
    (folder / "gateway_redis_url").write_text(own_redis.url + "\n")
    return folder


def deployed_environment(triton: EmbeddedTriton, secrets: Path, state: Path) -> dict[str, str]:
    """gateway.env, with this machine's addresses and paths in place of the cluster's
    (Redis's URL is a secret file, in `secrets`)."""
    local = {
        "GATEWAY_TRITON_URLS": triton.endpoints.http_url,
        "GATEWAY_MODEL_REPOSITORY": str(ROOT / "model_repository"),
        "GATEWAY_STATE_DIR": str(state),
        "GATEWAY_SECRETS_DIR": str(secrets),
    }
    assert set(local) <= set(DEPLOYED)  # replaced, not added
    return {**DEPLOYED, **local}


class Stream(threading.Thread):
    """Inferences over keep-alive connections, a new connection (through the balancer)
    whenever the server closes one or after 100 requests."""

    def __init__(self, balancer: ReadinessBalancer, key: str, seed: int) -> None:
        super().__init__(name=f"stream-{seed}", daemon=True)
        self.balancer, self.key, self.seed = balancer, key, seed
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self.served_by: Counter[int] = Counter()
        self.closed_by_server = 0
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            port = httpx.URL(self.balancer.pick()).port or 80
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                for _ in range(100):
                    if self.stop.is_set():
                        break
                    n += 1
                    status, closing = self._infer(connection, n)
                    self.statuses[status] += 1
                    self.served_by[port] += 1
                    if status != 200:
                        self.failures.append(f"{status} from :{port}")
                    if closing:
                        self.closed_by_server += 1
                        break
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{type(exc).__name__} from :{port}: {exc}")
            finally:
                connection.close()

    def _infer(self, connection: http.client.HTTPConnection, n: int) -> tuple[int, bool]:
        value = float(self.seed * 1000 + n % 50)  # repeats: hits and misses
        body = {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32",
                            "data": [value] * 30}]}  # fmt: skip
        connection.request(
            "POST",
            "/v2/models/tabular_classifier/infer",
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        return response.status, (response.getheader("connection") or "").lower() == "close"


def test_a_rolling_restart_fails_no_request(
    triton: EmbeddedTriton, own_redis: EmbeddedRedis, secrets_dir: Path, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]

    def start(stack: ExitStack, port: int, generation: int) -> Served:
        state = tmp_path / f"state-{port}-{generation}"
        environment = deployed_environment(triton, secrets_dir, state)
        return stack.enter_context(
            gateway_serve(
                triton,
                own_redis,
                state,
                command=gateway_command(),
                port=port,
                stop_s=STOP_BOUND_S,
                env=environment,
            )
        )

    with ExitStack() as stack:
        served = {port: start(stack, port, 0) for port in ports}
        balancer = ReadinessBalancer([f"http://127.0.0.1:{port}" for port in ports])
        stack.callback(balancer.close)
        _, key = create_key(served[ports[0]].url, models=["*"])
        streams = [Stream(balancer, key, seed) for seed in (1, 2)]
        for stream in streams:
            stream.start()
            stack.callback(stream.join, 30)
            stack.callback(stream.stop.set)
        eventually(lambda: sum(sum(s.statuses.values()) for s in streams) > 100)

        for generation, port in enumerate(ports, start=1):
            old = served[port].process
            before = sum(s.served_by[port] for s in streams)
            old.send_signal(signal.SIGTERM)
            stopping = time.monotonic()

            # Not ready at once (once the supervisor has passed SIGTERM on to its workers),
            # while it still serves.
            def draining(p: int = port) -> bool:
                answer = httpx.get(f"http://127.0.0.1:{p}/v2/health/ready", timeout=5)
                return answer.status_code == 503 and "shutting down" in answer.json()["error"]

            eventually(draining, timeout_s=DRAIN_S / 2, what="readiness turns 503")
            old.wait(STOP_BOUND_S)
            assert time.monotonic() - stopping >= DRAIN_S  # it drained first
            assert old.returncode == 0, old.returncode
            served[port] = start(stack, port, generation)

            def serving_again(p: int = port, b: int = before) -> bool:
                return sum(s.served_by[p] for s in streams) > b + 20

            eventually(serving_again, what="the replacement takes traffic")

        for stream in streams:
            stream.stop.set()
            stream.join(30)
    failures = [failure for stream in streams for failure in stream.failures]
    assert failures == []
    total = sum(sum(stream.statuses.values()) for stream in streams)
    assert total > 300, total
    assert sum(stream.closed_by_server for stream in streams) >= 1  # drains closed connections

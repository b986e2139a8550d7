"""Starting the systems a benchmark measures: an embedded Redis and Triton, gateways, and
any other server, each its own process, ready when its probe URL answers."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from devstack import EmbeddedRedis, EmbeddedTriton, ManagedProcess
from devstack.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def start(
    name: str,
    argv: list[str],
    state: Path,
    env: dict[str, str],
    probe: str,
    *,
    ready_timeout_s: float = 240,
    stop_timeout_s: float = 20,
) -> ManagedProcess:
    """Start `argv` (log in `state/<name>.log`); return once `probe` answers below 500."""
    process = ManagedProcess(
        name, argv, state / f"{name}.log", env=env, stop_timeout_s=stop_timeout_s
    )
    process.start()
    process.wait_ready(lambda: _answers(probe), ready_timeout_s)
    return process


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def backends(state: Path, models: list[str]) -> Iterator[tuple[EmbeddedTriton, str]]:
    """An embedded Redis and Triton (serving `models`); yields Triton and Redis's URL."""
    redis_server = EmbeddedRedis(state, persistent=False)
    triton = EmbeddedTriton(ROOT / "model_repository", state, models=models)
    try:
        redis_url = redis_server.start()
        triton.start()
        yield triton, redis_url
    finally:
        triton.stop()
        redis_server.stop()


def start_gateway(
    name: str,
    workers: int,
    state: Path,
    services: tuple[EmbeddedTriton, str],
    key: str,
    extra_env: dict[str, str],
    grpc_port: int | None = None,
    source: Path | None = None,
) -> tuple[str, ManagedProcess]:
    """`gateway serve` with `workers` on a free port, in front of `services`; its URL. Its
    gRPC port is `grpc_port`, or a free one; `source`: run the gateway of another checkout
    (its `gateway` and `auth` packages, with this one's environment)."""
    triton, redis_url = services
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))},
        "GATEWAY_TRITON_URL": triton.endpoints.http_url,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_ADMIN_KEY": key,
        "GATEWAY_STATE_DIR": str(state / name),
        "GATEWAY_MODEL_REPOSITORY": str(ROOT / "model_repository"),
        **extra_env,
    }
    if source is not None:  # -P: the checkout on PYTHONPATH comes before this one
        env["PYTHONPATH"] = str(source.resolve())
    argv = [sys.executable, *(["-P"] if source else []), "-m", "gateway", "serve"]
    argv += ["--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers)]
    argv += ["--grpc-port", str(grpc_port or free_port())]
    url = f"http://127.0.0.1:{port}"
    return url, start(name, argv, state, env, f"{url}/v2/health/ready")


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by process `pid` and its children (a gateway and its workers)."""
    parent = psutil.Process(pid)
    times = [p.cpu_times() for p in [parent, *parent.children(recursive=True)]]
    return sum(t.user + t.system for t in times)

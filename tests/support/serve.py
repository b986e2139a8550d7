"""`gateway serve` as a child process, the way an operator runs it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from gateway.embedded import EmbeddedRedis, EmbeddedTriton
from gateway.embedded.ports import free_port
from tests.support.data import ROOT
from tests.support.keys import ADMIN_KEY
from tests.support.polling import eventually

STOP_S = 15  # a stop takes about a second; this is the test's patience


@dataclass(frozen=True)
class Served:
    url: str
    port: int
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def gateway_serve(
    triton: EmbeddedTriton,
    redis_server: EmbeddedRedis,
    state_dir: Path,
    workers: int = 2,
    **environment: str,
) -> Iterator[Served]:
    """`gateway serve --workers N` on a free port; SIGTERM afterwards, which must stop it
    (and its workers) within STOP_S, or the test fails and everything is killed."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PROMETHEUS_"))},
        "GATEWAY_TRITON_URL": triton.endpoints.http_url,
        "GATEWAY_REDIS_URL": redis_server.url,
        "GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_STATE_DIR": str(state_dir),
        "GATEWAY_ACCESS_LOG": "false",
        **environment,
    }
    argv = ["gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", *argv, "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _ready(url, process), timeout_s=90, what="gateway serve is ready")
        yield Served(url, port, process)
    finally:
        _stop(process)


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, f"gateway serve exited with {process.returncode}"
    try:
        return httpx.get(f"{url}/v2/health/ready").status_code == 200
    except httpx.TransportError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        children = psutil.Process(process.pid).children(recursive=True)
    process.terminate()
    try:
        process.wait(STOP_S)
    except subprocess.TimeoutExpired:
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        process.kill()
        process.wait()
        raise AssertionError(f"gateway serve did not stop within {STOP_S} s of SIGTERM") from None

"""`gateway up` runs the whole stack from one command and leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.embedded.ports import free_port
from tests.support.data import ROOT, samples
from tests.support.processes import alive, wait_gone


@pytest.fixture
def stack(
    tmp_path: Path, model_repository: Path
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "up",
            "--port",
            str(free_port()),
            "--state-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack_file = tmp_path / "stack.json"
    deadline = time.monotonic() + 120
    while not stack_file.exists():
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "gateway up did not write stack.json"
        time.sleep(0.1)
    described = json.loads(stack_file.read_text())
    try:
        yield process, described
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        wait_gone([pid for pid in described["pids"].values() if pid], 20)


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the gateway did not become ready")


def test_up_serves_then_sigterm_stops_every_piece(
    stack: tuple[subprocess.Popen[str], dict[str, Any]], tmp_path: Path
) -> None:
    process, described = stack
    assert set(described) >= {
        "gateway",
        "triton_http",
        "triton_grpc",
        "triton_metrics",
        "redis",
        "pids",
    }
    wait_ready(described["gateway"])
    x = samples("digits_classifier", rows=1)
    body = {
        "inputs": [
            {"name": "image", "shape": [1, 8, 8], "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }
    response = httpx.post(f"{described['gateway']}/v2/models/digits_classifier/infer", json=body)
    assert response.status_code == 200
    assert redis.Redis.from_url(described["redis"]).ping()
    assert httpx.get(described["triton_metrics"]).status_code == 200

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert "gateway ready at" in output and "curl" in output and "digits_classifier" in output
    pids = [described["pids"][name] for name in ("gateway", "triton", "redis")]
    assert wait_gone(pids, 20) == []
    assert not (tmp_path / "stack.json").exists()
    assert (tmp_path / "triton.log").stat().st_size > 0


def test_killed_parent_leaves_no_orphans(
    stack: tuple[subprocess.Popen[str], dict[str, Any]],
) -> None:
    process, described = stack
    children = [described["pids"]["triton"], described["pids"]["redis"]]
    assert all(alive(pid) for pid in children)
    process.kill()  # SIGKILL: no clean-up code runs in the parent
    process.wait()
    assert wait_gone(children, 30) == []

"""`gateway up` runs the whole stack from one command and leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio_grpcclient

from devstack.ports import free_port
from tests.support.data import ROOT, samples
from tests.support.deploy import tool
from tests.support.polling import eventually
from tests.support.processes import alive, wait_gone
from tests.support.up import Stack


@pytest.fixture
def stack(tmp_path: Path, model_repository: Path) -> Iterator[Stack]:
    started = Stack(tmp_path)
    try:
        yield started
    finally:
        started.close()


def test_up_serves_then_sigterm_stops_every_piece(stack: Stack, tmp_path: Path) -> None:
    described = stack.described
    assert set(described) >= {
        "gateway",
        "triton_http",
        "triton_grpc",
        "triton_metrics",
        "redis",
        "pids",
    }
    stack.wait_ready()
    key = stack.printed_key()
    assert key is not None, stack.output
    assert stack.infer(key).status_code == 200
    assert stack.infer("gwk_not_a_key").status_code == 401
    assert_grpc_serves(described["gateway_grpc"], key)
    assert redis.Redis.from_url(described["redis"]).ping()
    assert httpx.get(described["triton_metrics"]).status_code == 200

    stack.terminate()

    assert "gateway ready at" in stack.output and "curl" in stack.output
    assert f"gRPC (KServe v2, tritonclient.grpc) at {described['gateway_grpc']}" in stack.output
    assert "tritonclient.grpc as g" in stack.output
    assert "embedded backends (supervised): Redis up, Triton up" in stack.output
    assert "digits_classifier" in stack.output
    pids = [described["pids"][name] for name in ("gateway", "triton", "redis")]
    assert wait_gone(pids, 20) == []
    assert not (tmp_path / "stack.json").exists()
    assert (tmp_path / "triton.log").stat().st_size > 0


def assert_grpc_serves(address: str, key: str) -> None:
    """Stock tritonclient.grpc, sync and asyncio, through `gateway up`'s gRPC port."""
    x = samples("digits_classifier", rows=1)
    metadata = {"authorization": f"Bearer {key}"}
    client = grpcclient.InferenceServerClient(address)
    try:
        tensor = grpcclient.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("digits_classifier", [tensor], headers=metadata)
        assert result.as_numpy("label") is not None
    finally:
        client.close()

    async def asynchronously() -> None:
        aio_client = aio_grpcclient.InferenceServerClient(address)
        try:
            assert await aio_client.is_server_ready()
            tensor = aio_grpcclient.InferInput("image", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            answer = await aio_client.infer("digits_classifier", [tensor], headers=metadata)
            assert answer.as_numpy("label") is not None
        finally:
            await aio_client.close()

    asyncio.run(asynchronously())


def gateway_up(state_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    argv = [sys.executable, "-m", "gateway", "up", "--port", str(port)]
    return subprocess.run(
        [*argv, "--state-dir", str(state_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ready_is_printed_once_it_answers_and_a_second_stack_is_refused_at_once(
    stack: Stack, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    deadline = time.monotonic() + 120
    while "gateway ready at" not in stack.output:
        assert stack.process.poll() is None and time.monotonic() < deadline, stack.output
        time.sleep(0.05)
    gateway = stack.described["gateway"]
    assert httpx.get(f"{gateway}/v2/health/live").status_code == 200  # no retry needed

    same_folder = gateway_up(tmp_path, free_port())
    assert same_folder.returncode == 1
    assert same_folder.stderr.startswith(f"gateway: the state folder {tmp_path} is in use")
    assert f"pid {stack.process.pid}" in same_folder.stderr
    assert "gateway ready" not in same_folder.stdout
    assert json.loads((tmp_path / "stack.json").read_text()) == stack.described  # untouched
    assert alive(stack.described["pids"]["redis"])

    elsewhere = tmp_path_factory.mktemp("second-stack")
    same_port = gateway_up(elsewhere, int(gateway.rsplit(":", 1)[1]))
    assert same_port.returncode == 1
    assert "is not available" in same_port.stderr and "--port" in same_port.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["stack.lock"]  # nothing started
    assert httpx.get(f"{gateway}/v2/health/ready").status_code == 200


def test_ctrl_c_stops_every_piece_quietly(stack: Stack) -> None:
    stack.wait_ready()
    assert stack.terminate(signal.SIGINT) == 0
    assert "Traceback" not in stack.output, stack.output
    pids = [stack.described["pids"][name] for name in ("gateway", "triton", "redis")]
    assert wait_gone(pids, 20) == []


def test_keys_survive_a_restart_and_no_second_admin_key_is_made(
    stack: Stack, tmp_path: Path
) -> None:
    stack.wait_ready()
    key = stack.printed_key()
    assert key is not None
    stack.terminate()

    again = Stack(tmp_path)
    try:
        again.wait_ready()
        assert again.printed_key() is None
        assert "one exists already" in again.output
        assert again.infer(key).status_code == 200
    finally:
        again.close()


def test_publishing_changes_the_working_copy_never_the_source_folder(
    stack: Stack, model_repository: Path
) -> None:
    stack.wait_ready()
    key = stack.printed_key()
    assert key is not None
    model = "digits_classifier"
    config_before = (model_repository / model / "config.pbtxt").read_text()
    working = stack.state_dir / "model_repository"
    published = httpx.post(
        f"{stack.described['gateway']}/admin/models/{model}/versions",
        content=(model_repository / model / "1" / "model.onnx").read_bytes(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"},
        timeout=120,
    )
    assert published.status_code == 201, published.text
    version = published.json()["version"]
    assert (working / model / version / "model.onnx").is_file()
    assert str(int(version)) in (working / model / "config.pbtxt").read_text()
    assert not (model_repository / model / version).exists()
    assert (model_repository / model / "config.pbtxt").read_text() == config_before
    status = subprocess.run(
        [tool("git"), "status", "--porcelain", "--", str(model_repository)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert status.stdout == ""


def test_killed_parent_leaves_no_orphans(stack: Stack) -> None:
    children = [stack.described["pids"]["triton"], stack.described["pids"]["redis"]]
    assert all(alive(pid) for pid in children)
    stack.process.kill()  # SIGKILL: no clean-up code runs in the parent
    stack.process.wait()
    assert wait_gone(children, 30) == []


def test_a_killed_triton_is_restarted_with_its_models_and_nothing_left_behind(
    stack: Stack, tmp_path: Path
) -> None:
    stack.wait_ready()
    key = stack.printed_key()
    assert key is not None
    old_triton = psutil.Process(stack.described["pids"]["triton"])
    stubs = [child.pid for child in old_triton.children(recursive=True)]
    assert stubs  # the Python backend's stub processes
    old_triton.kill()  # SIGKILL: its stubs are orphaned unless someone cleans up

    def restarted() -> bool:
        described = json.loads((tmp_path / "stack.json").read_text())
        triton = next(b for b in described["backends"] if b["name"] == "Triton")
        return bool(triton["restarts"] == 1 and triton["state"] == "up")

    eventually(restarted, timeout_s=180, what="the supervisor restarts Triton")
    assert wait_gone(stubs, 20) == []
    eventually(lambda: stack.infer(key).status_code == 200, timeout_s=60)
    gateway = stack.described["gateway"]
    headers = {"Authorization": f"Bearer {key}"}
    backends = httpx.get(f"{gateway}/admin/backends", headers=headers).json()
    assert {b["name"]: b["restarts"] for b in backends["embedded"]} == {"Redis": 0, "Triton": 1}
    metrics = httpx.get(f"{gateway}/metrics").text
    assert 'gateway_backend_restarts_total{backend="Triton"} 1.0' in metrics
    new_pid = json.loads((tmp_path / "stack.json").read_text())["pids"]["triton"]
    assert new_pid != old_triton.pid
    # Restarted after `gateway serve` exported its settings for its workers, it gets none
    # of them (the key pepper, the cache secret and the admin key among them).
    inherited = [name for name in psutil.Process(new_pid).environ() if name.startswith("GATEWAY_")]
    assert inherited == []
    stack.terminate()
    assert wait_gone([new_pid], 20) == []


def test_up_with_two_tritons_balances_over_both_and_stops_them(tmp_path: Path) -> None:
    stack = Stack(tmp_path, "--tritons", "2")
    try:
        stack.wait_ready()
        key = stack.printed_key()
        assert key is not None
        assert len(stack.described["tritons"]) == 2
        assert {"triton 1", "triton 2"} <= set(stack.described["pids"])
        for offset in range(40):  # new inputs: every one reaches a Triton
            assert stack.infer(key, offset).status_code == 200
        gateway = stack.described["gateway"]
        headers = {"Authorization": f"Bearer {key}"}
        backends = httpx.get(f"{gateway}/admin/backends", headers=headers).json()
        assert {b["name"] for b in backends["embedded"]} == {"Redis", "Triton 1", "Triton 2"}
        metrics = httpx.get(f"{gateway}/metrics").text
        calls = [
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("gateway_triton_endpoint_calls_total{")
        ]
        assert len(calls) == 2 and min(calls) >= 5, calls
        pids = [pid for pid in stack.described["pids"].values() if pid]
        stack.terminate()
        assert wait_gone(pids, 30) == []
    finally:
        stack.close()

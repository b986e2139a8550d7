"""A team's own model, from a bare .onnx file to traffic, with one command each, then the
calls of the stock `simple_*` examples of triton-inference-server/client (health and server
metadata, inference over HTTP and gRPC, sync, async and asyncio, strings) with only a key
header added."""

from __future__ import annotations

import asyncio
import queue
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio_grpcclient
import tritonclient.http as httpclient
import tritonclient.http.aio as aio_httpclient

from devstack import EmbeddedRedis, EmbeddedTriton
from devstack.ports import free_port
from tests.integration.conftest import gateway_settings
from tests.support import own_backends
from tests.support.keys import ADMIN_KEY
from tests.support.server import running_gateway
from tests.support.simple_models import simple, simple_string

INPUT0 = np.arange(16, dtype=np.int32).reshape(1, 16)
INPUT1 = np.ones((1, 16), dtype=np.int32)


def headers() -> dict[str, str]:
    """The one line a stock example gains (a new dict each call: tritonclient adds its own
    headers to the dict it is given)."""
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def grpc_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_KEY}"}  # gRPC metadata keys are lower-case


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Path:
    return own_backends.writable_copy(
        tmp_path_factory, model_repository, "own-models", "tabular_classifier"
    )


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, repository: Path
) -> Iterator[tuple[str, str]]:
    """(REST URL, gRPC address) of a gateway with `simple` and `simple_string` added."""
    with (
        own_backends.own_triton(repository, tmp_path_factory, "own-triton") as triton,
        own_backends.own_redis(tmp_path_factory, "own-redis") as redis_server,
    ):
        yield from _serving(triton, redis_server, repository, tmp_path_factory.mktemp("onnx"))


def _serving(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis, repository: Path, files: Path
) -> Iterator[tuple[str, str]]:
    port = free_port()
    settings = gateway_settings(
        triton, redis_server, grpc_port=port, model_repository=repository, catalog_refresh_s=0.3
    )
    with running_gateway(settings) as url:
        for name, data in (("simple", simple()), ("simple_string", simple_string())):
            (files / f"{name}.onnx").write_bytes(data)
            added = gateway_cli("add", name, str(files / f"{name}.onnx"), "--url", url)
            assert added.returncode == 0, added.stderr
            assert f"added model '{name}', version 1: READY" in added.stdout
            assert f'name: "{name}"' in added.stdout  # the config, shown
        yield url, f"127.0.0.1:{port}"


def gateway_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "models", *args, "--key", ADMIN_KEY],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_add_shows_the_config_first_and_refuses_a_name_taken(
    gateway: tuple[str, str], tmp_path: Path
) -> None:
    (tmp_path / "m.onnx").write_bytes(simple())
    shown = gateway_cli(
        "add", "another", str(tmp_path / "m.onnx"), "--dry-run", "--url", gateway[0]
    )
    assert shown.returncode == 0 and "(dry run: model 'another' not added)" in shown.stdout
    assert "max_batch_size: 64" in shown.stdout
    taken = gateway_cli("add", "simple", str(tmp_path / "m.onnx"), "--url", gateway[0])
    assert taken.returncode == 1 and "exists; publish a new version" in taken.stderr


def test_simple_http_health_metadata(gateway: tuple[str, str]) -> None:
    client = httpclient.InferenceServerClient(gateway[0].removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("simple", headers=headers())
        metadata = client.get_server_metadata(headers=headers())
        assert metadata["name"] == "triton"  # the stock example's own check
        model = client.get_model_metadata("simple", headers=headers())
        assert model["name"] == "simple"
        assert client.get_model_config("simple", headers=headers())["name"] == "simple"
    finally:
        client.close()


def test_simple_grpc_health_metadata(gateway: tuple[str, str]) -> None:
    client = grpcclient.InferenceServerClient(gateway[1])
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("simple", headers=grpc_headers())
        assert client.get_server_metadata(headers=grpc_headers()).name == "triton"
        assert client.get_model_metadata("simple", headers=grpc_headers()).name == "simple"
        config = client.get_model_config("simple", headers=grpc_headers()).config
        assert config.name == "simple"
    finally:
        client.close()


def http_inputs(module: Any, strings: bool = False) -> list[Any]:
    datatype = "BYTES" if strings else "INT32"
    inputs = [module.InferInput("INPUT0", [1, 16], datatype)]
    inputs.append(module.InferInput("INPUT1", [1, 16], datatype))
    for tensor, array in zip(inputs, (INPUT0, INPUT1), strict=True):
        data = (
            np.array([[str(v).encode() for v in array[0]]], dtype=np.object_) if strings else array
        )
        tensor.set_data_from_numpy(data)
    return inputs


def check(result: Any, strings: bool = False) -> None:
    total, difference = result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1")
    if strings:
        total = np.array([[int(v) for v in total[0]]])
        difference = np.array([[int(v) for v in difference[0]]])
    np.testing.assert_array_equal(total, INPUT0 + INPUT1)
    np.testing.assert_array_equal(difference, INPUT0 - INPUT1)


def test_simple_http_infer_client_sync_async_and_strings(gateway: tuple[str, str]) -> None:
    client = httpclient.InferenceServerClient(gateway[0].removeprefix("http://"), concurrency=2)
    try:
        outputs = [
            httpclient.InferRequestedOutput(n, binary_data=True) for n in ("OUTPUT0", "OUTPUT1")
        ]
        check(client.infer("simple", http_inputs(httpclient), outputs=outputs, headers=headers()))
        pending = client.async_infer("simple", http_inputs(httpclient), headers=headers())
        check(pending.get_result())
        check(client.infer("simple_string", http_inputs(httpclient, True), headers=headers()), True)
    finally:
        client.close()


def test_simple_http_aio_infer_client(gateway: tuple[str, str]) -> None:
    async def scenario() -> None:
        client = aio_httpclient.InferenceServerClient(gateway[0].removeprefix("http://"))
        try:
            check(await client.infer("simple", http_inputs(aio_httpclient), headers=headers()))
        finally:
            await client.close()

    asyncio.run(scenario())


def test_simple_grpc_infer_client_sync_async_and_strings(gateway: tuple[str, str]) -> None:
    client = grpcclient.InferenceServerClient(gateway[1])
    try:
        check(client.infer("simple", http_inputs(grpcclient), headers=grpc_headers()))
        answers: queue.Queue[Any] = queue.Queue()
        client.async_infer(
            "simple",
            http_inputs(grpcclient),
            callback=lambda result, error: answers.put((result, error)),
            headers=grpc_headers(),
        )
        result, error = answers.get(timeout=60)
        assert error is None
        check(result)
        strings = client.infer(
            "simple_string", http_inputs(grpcclient, True), headers=grpc_headers()
        )
        check(strings, True)
    finally:
        client.close()


def test_simple_grpc_aio_infer_client(gateway: tuple[str, str]) -> None:
    async def scenario() -> None:
        async with aio_grpcclient.InferenceServerClient(gateway[1]) as client:
            check(await client.infer("simple", http_inputs(aio_grpcclient), headers=grpc_headers()))

    asyncio.run(scenario())


def test_a_second_version_is_gated_on_generated_inputs(
    gateway: tuple[str, str], tmp_path: Path
) -> None:
    (tmp_path / "v2.onnx").write_bytes(simple())
    published = gateway_cli("publish", "simple", str(tmp_path / "v2.onnx"), "--url", gateway[0])
    assert published.returncode == 0, published.stderr
    promoted = httpx.post(
        f"{gateway[0]}/admin/models/simple/promote", json={"version": "2"}, headers=headers()
    )
    assert promoted.status_code == 200, promoted.text
    gate = promoted.json()["quality_gate"]
    assert gate["result"] == "passed" and gate["probes"] == "generated" and gate["value"] == 1.0

"""The gRPC front with stock `tritonclient.grpc` (sync and asyncio): answers equal REST's and
ONNX Runtime's, errors carry Triton's status codes, and REST and gRPC share cache entries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio_grpcclient
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from devstack import EmbeddedRedis, EmbeddedTriton
from devstack.ports import free_port
from tests.integration.conftest import gateway_settings
from tests.support.admin import create_key
from tests.support.data import INPUT_NAMES, OUTPUT_NAMES, onnxruntime_outputs, samples
from tests.support.keys import ADMIN_KEY, auth_headers
from tests.support.metrics import value
from tests.support.server import running_gateway


def metadata(key: str = ADMIN_KEY) -> dict[str, str]:
    """gRPC metadata keys are lower-case (grpcio refuses others: "Invalid metadata")."""
    return {"authorization": f"Bearer {key}"}


CASES = [(m, v) for m in ("tabular_classifier", "digits_classifier") for v in ("1", "2")]


@pytest.fixture(scope="module")
def gateway(triton: EmbeddedTriton, redis_server: EmbeddedRedis) -> Iterator[tuple[str, str]]:
    """(REST URL, gRPC address)."""
    port = free_port()
    settings = gateway_settings(triton, redis_server, grpc_port=port)
    with running_gateway(settings) as url:
        yield url, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(gateway: tuple[str, str]) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(gateway[1])
    yield client
    client.close()


def infer_inputs(model: str, rows: int = 5, offset: int = 0) -> list[grpcclient.InferInput]:
    x = samples(model, rows=rows, offset=offset)
    tensor = grpcclient.InferInput(INPUT_NAMES[model], list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return [tensor]


@pytest.mark.parametrize(("model", "version"), CASES)
def test_answers_equal_rest_and_onnxruntime(
    client: grpcclient.InferenceServerClient, gateway: tuple[str, str], model: str, version: str
) -> None:
    x = samples(model, rows=5)
    result = client.infer(
        model,
        infer_inputs(model),
        model_version=version,
        outputs=[grpcclient.InferRequestedOutput(name) for name in OUTPUT_NAMES],
        headers=metadata(),
    )
    assert result.get_response().model_version == version
    expected = onnxruntime_outputs(model, version, x)
    rest = httpx.post(
        f"{gateway[0]}/v2/models/{model}/versions/{version}/infer",
        json={"inputs": [{"name": INPUT_NAMES[model], "shape": list(x.shape),
                          "datatype": "FP32", "data": x.ravel().tolist()}]},
        headers=auth_headers(),
    ).json()  # fmt: skip
    for name in OUTPUT_NAMES:
        got = result.as_numpy(name)
        assert got.dtype == expected[name].dtype
        np.testing.assert_array_equal(got, expected[name].reshape(got.shape))
        (rest_output,) = [o for o in rest["outputs"] if o["name"] == name]
        np.testing.assert_array_equal(got.ravel(), np.asarray(rest_output["data"], got.dtype))


def test_health_metadata_config_and_statistics(
    client: grpcclient.InferenceServerClient, gateway: tuple[str, str]
) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata(headers=metadata()).name == "triton"
    assert client.is_model_ready("tabular_classifier", "2", headers=metadata())
    described = client.get_model_metadata("tabular_classifier", headers=metadata())
    rest = httpx.get(f"{gateway[0]}/v2/models/tabular_classifier", headers=auth_headers()).json()
    assert described.name == rest["name"] and list(described.versions) == rest["versions"]
    assert [i.name for i in described.inputs] == [i["name"] for i in rest["inputs"]]
    config = client.get_model_config("tabular_classifier", headers=metadata()).config
    assert config.max_batch_size == 64 and config.input[0].name == "features"
    stats = client.get_inference_statistics("tabular_classifier", headers=metadata())
    assert {s.name for s in stats.model_stats} == {"tabular_classifier"}


def test_the_asyncio_client_and_typed_contents_work_too(gateway: tuple[str, str]) -> None:
    async def scenario() -> None:
        client = aio_grpcclient.InferenceServerClient(gateway[1])
        try:
            x = samples("tabular_classifier", rows=3, offset=20)
            tensor = aio_grpcclient.InferInput("features", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            result = await client.infer(
                "tabular_classifier", [tensor], model_version="1", headers=metadata()
            )
            expected = onnxruntime_outputs("tabular_classifier", "1", x)
            np.testing.assert_array_equal(
                result.as_numpy("probabilities"), expected["probabilities"]
            )
        finally:
            await client.close()

    asyncio.run(scenario())
    # Inputs in the typed `contents` fields instead of raw_input_contents.
    x = samples("tabular_classifier", rows=2, offset=30)
    request = service_pb2.ModelInferRequest(model_name="tabular_classifier", model_version="1")
    request.inputs.add(name="features", datatype="FP32", shape=list(x.shape))
    request.inputs[0].contents.fp32_contents.extend(x.ravel().tolist())
    with grpc.insecure_channel(gateway[1]) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answer = stub.ModelInfer(request, metadata=list(metadata().items()))
    (index,) = [i for i, output in enumerate(answer.outputs) if output.name == "label"]
    label = np.frombuffer(answer.raw_output_contents[index], dtype="<i8")
    np.testing.assert_array_equal(
        label, onnxruntime_outputs("tabular_classifier", "1", x)["label"].ravel()
    )


def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(InferenceServerException) as raised:
        call()  # type: ignore[operator]
    return grpc.StatusCode[raised.value.status().removeprefix("StatusCode.")], str(raised.value)


def test_errors_carry_the_status_codes_triton_uses(
    client: grpcclient.InferenceServerClient, gateway: tuple[str, str]
) -> None:
    def infer(
        headers: dict[str, str], model: str = "tabular_classifier", **kwargs: object
    ) -> object:
        inputs = kwargs.pop("inputs", infer_inputs("tabular_classifier", rows=1))
        return lambda: client.infer(model, inputs, headers=headers, **kwargs)

    code, message = status_of(infer({}))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "key" in message
    _, digits_only = create_key(gateway[0], models=["digits_*"])
    code, _ = status_of(infer({"x-api-key": digits_only}))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = status_of(infer(metadata(), model="no_such_model"))
    assert code == grpc.StatusCode.NOT_FOUND
    bad = grpcclient.InferInput("features", [1, 29], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 29), np.float32))
    code, message = status_of(infer(metadata(), inputs=[bad]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "features" in message

    _, limited = create_key(gateway[0], models=["*"], rate_limit_per_second=0.1, burst=1)
    request = service_pb2.ModelInferRequest(model_name="tabular_classifier", model_version="1")
    x = samples("tabular_classifier", rows=1)
    request.inputs.add(name="features", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    with grpc.insecure_channel(gateway[1]) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        mixed = service_pb2.ModelInferRequest()
        mixed.CopyFrom(request)
        mixed.inputs[0].contents.fp32_contents.extend(x.ravel().tolist())
        with pytest.raises(grpc.RpcError) as mixed_call:
            stub.ModelInfer(mixed, metadata=list(metadata().items()))
        assert mixed_call.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "contents field must not be specified when using raw_input_contents for " in (
            mixed_call.value.details() or ""
        )
        limited_metadata = list(metadata(limited).items())
        _, call = stub.ModelInfer.with_call(request, metadata=limited_metadata)
        trailers = dict(call.trailing_metadata())
        assert trailers["ratelimit-remaining"] == "0" and trailers["x-cache"] in ("miss", "hit")
        with pytest.raises(grpc.RpcError) as limited_call:
            stub.ModelInfer(request, metadata=limited_metadata)
    error = limited_call.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing: Any = error.trailing_metadata()  # grpc's stubs type its items loosely
    details = dict(trailing)
    encoded = details["grpc-status-details-bin"]
    assert isinstance(encoded, bytes)
    status = status_pb2.Status.FromString(encoded)
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry) and retry.retry_delay.seconds >= 1
    assert int(str(details["retry-after"])) >= 1


def test_triton_down_is_unavailable(redis_server: EmbeddedRedis, triton: EmbeddedTriton) -> None:
    port = free_port()
    dead = gateway_settings(
        triton, redis_server, grpc_port=port, triton_url=f"http://127.0.0.1:{free_port()}"
    )
    with running_gateway(dead):
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            # Ready all the same: its cache can answer (Triton's own state: /health/triton).
            assert client.is_server_ready()
            code, message = status_of(
                lambda: client.infer(
                    "tabular_classifier", infer_inputs("tabular_classifier"), headers=metadata()
                )
            )
            assert code == grpc.StatusCode.UNAVAILABLE and "Triton" in message
        finally:
            client.close()


def test_a_rest_miss_is_a_grpc_hit_on_the_same_tensors(gateway: tuple[str, str]) -> None:
    x = samples("digits_classifier", rows=2, offset=100)
    rest = httpx.post(
        f"{gateway[0]}/v2/models/digits_classifier/versions/1/infer",
        json={"inputs": [{"name": "image", "shape": list(x.shape), "datatype": "FP32",
                          "data": x.ravel().tolist()}]},
        headers=auth_headers(),
    )  # fmt: skip
    assert rest.headers["x-cache"] == "miss"
    request = service_pb2.ModelInferRequest(model_name="digits_classifier", model_version="1")
    request.inputs.add(name="image", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    with grpc.insecure_channel(gateway[1]) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answer, call = stub.ModelInfer.with_call(request, metadata=list(metadata().items()))
    assert dict(call.trailing_metadata())["x-cache"] == "hit"
    (index,) = [i for i, output in enumerate(answer.outputs) if output.name == "label"]
    labels = np.frombuffer(answer.raw_output_contents[index], dtype="<i8")
    assert (
        labels.tolist() == next(o for o in rest.json()["outputs"] if o["name"] == "label")["data"]
    )
    metrics = httpx.get(f"{gateway[0]}/metrics").text
    assert value(metrics, "gateway_inference_requests_total", protocol="grpc", cache="hit") >= 1
    assert value(metrics, "gateway_grpc_requests_total", method="ModelInfer", code="OK") >= 1


def test_a_callers_traceparent_is_continued(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    port = free_port()
    with running_gateway(gateway_settings(triton, redis_server, grpc_port=port), provider):
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
            headers = {**metadata(), "traceparent": f"00-{trace_id}-{parent}-01"}
            client.infer("tabular_classifier", infer_inputs("tabular_classifier", 1, 40),
                         headers=headers)  # fmt: skip
        finally:
            client.close()
    (server,) = [s for s in exporter.get_finished_spans() if s.name == "ModelInfer"]
    assert server.context is not None and format(server.context.trace_id, "032x") == trace_id
    assert server.parent is not None and format(server.parent.span_id, "016x") == parent
    children = [
        s for s in exporter.get_finished_spans() if s.context.trace_id == server.context.trace_id
    ]
    # the default span detail: the request's span, with the cache's outcome, and the Triton call
    assert {s.name for s in children} == {"ModelInfer", "triton.infer"}
    assert (server.attributes or {})["gateway.cache.outcome"] == "miss"
    provider.shutdown()


def server_settings(address: str) -> dict[int, int]:
    """The HTTP/2 SETTINGS the gRPC server sends a new connection (id -> value)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        # The client preface and an empty SETTINGS frame.
        connection.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        )
        received = b""
        while True:
            while len(received) < 9:
                chunk = connection.recv(65536)
                assert chunk, "closed before SETTINGS"
                received += chunk
            length, kind, flags = int.from_bytes(received[:3], "big"), received[3], received[4]
            while len(received) < 9 + length:
                received += connection.recv(65536)
            payload, received = received[9 : 9 + length], received[9 + length :]
            if kind == 0x4 and not flags & 0x1:  # SETTINGS, not an ACK
                return {
                    int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(
                        payload[i + 2 : i + 6], "big"
                    )
                    for i in range(0, length, 6)
                }


def test_a_connection_may_open_at_most_100_streams(gateway: tuple[str, str]) -> None:
    max_concurrent_streams = 0x3
    assert server_settings(gateway[1])[max_concurrent_streams] == 100


def test_a_burst_of_one_key_gets_its_share_and_others_are_served(gateway: tuple[str, str]) -> None:
    """400 calls at once from one key on one connection: past 100 streams the connection
    refuses them (REFUSED_STREAM), past the key's share they are RESOURCE_EXHAUSTED (its
    429; how many depends on how fast the others end); the worker is never full (no "at
    capacity"), and another key is served meanwhile on its own connection."""
    _, flooder = create_key(gateway[0], name="flooder", models=["*"])
    _, victim = create_key(gateway[0], name="victim", models=["*"])
    x = samples("tabular_classifier", rows=1, offset=7)
    details: list[str] = []

    async def call(stub: Any, key: str, n: int) -> grpc.StatusCode:
        request = service_pb2.ModelInferRequest(model_name="tabular_classifier")
        request.inputs.add(name="features", datatype="FP32", shape=[1, 30])
        request.raw_input_contents.append((x + n).astype("<f4").tobytes())
        try:
            await stub.ModelInfer(request, metadata=(("authorization", f"Bearer {key}"),))
        except grpc.aio.AioRpcError as error:
            details.append(str(error.details()))
            return error.code()
        return grpc.StatusCode.OK

    async def scenario() -> tuple[list[grpc.StatusCode], list[grpc.StatusCode]]:
        async with (
            grpc.aio.insecure_channel(gateway[1]) as one,
            grpc.aio.insecure_channel(
                gateway[1], options=[("grpc.use_local_subchannel_pool", 1)]
            ) as two,
        ):
            flooding = service_pb2_grpc.GRPCInferenceServiceStub(one)
            other = service_pb2_grpc.GRPCInferenceServiceStub(two)
            await call(other, victim, -1)  # its connection is open before the flood
            codes = await asyncio.gather(
                *(call(flooding, flooder, n) for n in range(400)),
                *(call(other, victim, n) for n in range(20)),
            )
            return codes[:400], codes[400:]

    flood, others = asyncio.run(scenario())
    assert others == [grpc.StatusCode.OK] * 20, details[:3]
    assert flood.count(grpc.StatusCode.OK) >= 1
    refused = [d for d in details if "RST_STREAM" in d or "API key already has" in d]
    assert len(refused) == len(details), sorted({d[:90] for d in details})

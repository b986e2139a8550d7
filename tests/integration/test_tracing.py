"""Traces: the span tree of a miss and of a hit, one trace across gateway and Triton, and
a dead or hung collector that costs requests nothing."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from devstack import EmbeddedRedis, EmbeddedTriton
from devstack.ports import free_port
from devstack.triton import triton_trace_arguments
from gateway.observability.metrics import Metrics
from gateway.observability.otlp_json import OtlpJsonSpanExporter
from gateway.observability.sampling import HeadSampledTracerProvider
from gateway.observability.tracing import tracer_provider
from loadtests.kit.otlp_sink import OtlpReceiver, ReceivedSpan
from tests.integration.conftest import gateway_settings
from tests.support.cache_client import infer
from tests.support.keys import ADMIN_KEY, auth_headers
from tests.support.polling import eventually
from tests.support.server import running_gateway

MODEL = "tabular_classifier"
ACCESS_LINES = io.BytesIO()  # the traced gateway's access log
SERVER_SPAN = "POST /v2/models/{model}/infer"


def unique_features() -> dict[str, npt.NDArray[np.float32]]:
    return {"features": np.random.default_rng().random((1, 30), dtype=np.float32)}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def tree(spans: tuple[ReadableSpan, ...], trace_id: int) -> dict[str, list[ReadableSpan]]:
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        if span.context is not None and span.context.trace_id == trace_id:
            by_name.setdefault(span.name, []).append(span)
    return by_name


@pytest.fixture(scope="module")
def traced(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> Iterator[tuple[str, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # Every traced request sets its exemplars (production: at most one a second a series).
    settings = gateway_settings(triton, redis_server, trace_spans="detailed", exemplar_interval_s=0)
    with running_gateway(settings, provider, ACCESS_LINES) as url:
        yield url, exporter


def test_span_tree_of_a_miss_then_of_a_hit(traced: tuple[str, InMemorySpanExporter]) -> None:
    url, exporter = traced
    x = unique_features()
    exporter.clear()
    assert infer(url, MODEL, x).cache == "miss"
    eventually(  # the cache.store span ends with the write behind the answer
        lambda: any(s.name == "cache.store" for s in exporter.get_finished_spans()), 5
    )
    (server,) = [s for s in exporter.get_finished_spans() if s.name == SERVER_SPAN]
    assert server.kind is SpanKind.SERVER and server.context is not None
    spans = tree(exporter.get_finished_spans(), server.context.trace_id)
    children = {
        name
        for name, group in spans.items()
        for s in group
        if s.parent and s.parent.span_id == server.context.span_id
    }
    assert children == {"auth", "cache.lookup", "triton.infer", "cache.store"}
    lookups = {
        (attrs(s)["gateway.cache.tier"], attrs(s)["gateway.cache.outcome"])
        for s in spans["cache.lookup"]
    }
    assert lookups == {("local", "miss"), ("redis", "miss")}
    (call,) = spans["triton.infer"]
    assert call.kind is SpanKind.CLIENT
    assert attrs(call)["gateway.model"] == MODEL and attrs(call)["gateway.model_version"] == "2"
    assert attrs(call)["gateway.batch_size"] == 1
    assert attrs(call)["gateway.bytes_in"] == 120 and attrs(call)["gateway.bytes_out"] > 0
    assert attrs(server)["http.response.status_code"] == 200

    exporter.clear()
    assert infer(url, MODEL, x).cache == "hit"
    (server,) = [s for s in exporter.get_finished_spans() if s.name == SERVER_SPAN]
    assert server.context is not None
    spans = tree(exporter.get_finished_spans(), server.context.trace_id)
    assert set(spans) == {SERVER_SPAN, "auth", "cache.lookup"}
    (lookup,) = spans["cache.lookup"]
    assert attrs(lookup)["gateway.cache.outcome"] == "hit"
    assert attrs(lookup)["gateway.cache.tier"] == "local"


def test_by_default_a_request_is_one_span_plus_its_triton_call(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    x = unique_features()
    with running_gateway(gateway_settings(triton, redis_server), provider) as url:
        assert infer(url, MODEL, x).cache == "miss"
        (server,) = [s for s in exporter.get_finished_spans() if s.name == SERVER_SPAN]
        assert server.context is not None
        spans = tree(exporter.get_finished_spans(), server.context.trace_id)
        assert set(spans) == {SERVER_SPAN, "triton.infer"}
        (call,) = spans["triton.infer"]
        assert call.parent is not None and call.parent.span_id == server.context.span_id
        assert attrs(server)["gateway.cache.outcome"] == "miss"
        assert attrs(server)["gateway.cache.tier"] == "redis"  # the last tier asked

        exporter.clear()
        assert infer(url, MODEL, x).cache == "hit"
        (server,) = exporter.get_finished_spans()
        assert server.name == SERVER_SPAN and attrs(server)["http.response.status_code"] == 200
        assert attrs(server)["gateway.cache.outcome"] == "hit"
        assert attrs(server)["gateway.cache.tier"] == "local"
    provider.shutdown()


def test_a_request_head_sampling_left_out_is_kept_when_slow(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> None:
    exporter = InMemorySpanExporter()
    provider = HeadSampledTracerProvider(0.0)  # OTEL_TRACES_SAMPLER_ARG=0: none drawn
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = gateway_settings(triton, redis_server, trace_slow_s=1e-6)  # every one is slow
    with running_gateway(settings, provider) as url:
        assert infer(url, MODEL, unique_features()).cache == "miss"
    (kept,) = exporter.get_finished_spans()  # one span, none for the stages or the call
    assert kept.name == SERVER_SPAN and attrs(kept)["gateway.trace.kept"] == "slow"
    assert attrs(kept)["http.response.status_code"] == 200
    provider.shutdown()


def test_the_callers_traceparent_is_continued(traced: tuple[str, InMemorySpanExporter]) -> None:
    url, exporter = traced
    exporter.clear()
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    answer = infer(
        url, MODEL, unique_features(), headers={"traceparent": f"00-{trace_id}-{parent}-01"}
    )
    assert answer.status == 200
    (server,) = [s for s in exporter.get_finished_spans() if s.name == SERVER_SPAN]
    assert server.context is not None and server.parent is not None
    assert format(server.context.trace_id, "032x") == trace_id
    assert format(server.parent.span_id, "016x") == parent


def test_latency_and_request_metrics_carry_the_trace_id_as_exemplar(
    traced: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = traced
    exporter.clear()
    assert infer(url, MODEL, unique_features()).status == 200
    (server,) = [s for s in exporter.get_finished_spans() if s.name == SERVER_SPAN]
    assert server.context is not None
    trace_id = format(server.context.trace_id, "032x")
    text = httpx.get(f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}).text
    exemplars = [line for line in text.splitlines() if f'trace_id="{trace_id}"' in line]
    assert any(line.startswith("gateway_inference_requests_total") for line in exemplars)
    assert any(line.startswith("gateway_inference_duration_seconds_bucket") for line in exemplars)


def test_metadata_routes_are_traced_by_the_fastapi_instrumentation(
    traced: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = traced
    exporter.clear()
    assert httpx.get(f"{url}/v2/models/{MODEL}", headers=auth_headers()).status_code == 200
    names = {s.name for s in exporter.get_finished_spans()}
    assert "GET /v2/models/{model}" in names and "auth" in names


def test_one_trace_from_the_gateway_into_triton(
    tmp_path_factory: pytest.TempPathFactory, model_repository: Path, redis_server: EmbeddedRedis
) -> None:
    with OtlpReceiver() as receiver:
        own_triton = EmbeddedTriton(
            model_repository,
            tmp_path_factory.mktemp("traced-triton"),
            models=[MODEL],
            extra_args=triton_trace_arguments(receiver.url),
        )
        own_triton.start()
        provider = tracer_provider(
            OtlpJsonSpanExporter(endpoint=receiver.url), Metrics(), schedule_delay_millis=100
        )
        try:
            with running_gateway(gateway_settings(own_triton, redis_server), provider) as url:
                answer = infer(url, MODEL, unique_features(), headers={"Cache-Control": "no-store"})
                assert answer.status == 200
                provider.force_flush()

                def joined(spans: list[ReceivedSpan]) -> bool:
                    calls = [s for s in spans if s.name == "triton.infer"]
                    return bool(calls) and any(
                        s.service == "triton" and s.trace_id == calls[-1].trace_id for s in spans
                    )

                spans = receiver.wait_for(joined, timeout_s=30)
        finally:
            provider.shutdown()
            own_triton.stop()
    (call,) = [s for s in spans if s.name == "triton.infer"]
    same_trace = [s for s in spans if s.trace_id == call.trace_id]
    gateway_spans = {s.name for s in same_trace if s.service == "gateway"}
    assert gateway_spans == {SERVER_SPAN, "triton.infer"}  # the default span detail
    triton_spans = [s for s in same_trace if s.service == "triton"]
    assert triton_spans
    triton_ids = {s.span_id for s in triton_spans}
    roots = [s for s in triton_spans if s.parent_span_id not in triton_ids]
    assert roots and all(s.parent_span_id == call.span_id for s in roots)


class Blackhole:
    """A TCP listener that accepts connections and never answers."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    connection.close()
                    return
                self.connections.append(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for connection in self.connections:
                connection.close()
        self.socket.close()
        self._thread.join(5)


@pytest.mark.parametrize("collector", ["refusing", "hung"])
def test_an_unreachable_collector_neither_fails_nor_stalls_requests(
    collector: str, triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> None:
    blackhole = Blackhole() if collector == "hung" else None
    port = blackhole.port if blackhole else free_port()
    endpoint = f"http://127.0.0.1:{port}/v1/traces"
    metrics = Metrics()
    provider = tracer_provider(
        OtlpJsonSpanExporter(endpoint=endpoint, timeout_s=2),
        metrics,
        max_queue_size=64,
        max_export_batch_size=16,
        schedule_delay_millis=20,
    )
    body = {
        "inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}]
    }
    try:
        with (
            running_gateway(gateway_settings(triton, redis_server), provider) as url,
            httpx.Client(base_url=url, headers=auth_headers()) as client,
        ):
            path = f"/v2/models/{MODEL}/infer"
            assert client.post(path, json=body).status_code == 200
            latencies = []
            for _ in range(300):
                started = time.perf_counter()
                assert client.post(path, json=body).status_code == 200
                latencies.append(time.perf_counter() - started)
    finally:
        if blackhole:
            blackhole.close()  # the pending export fails now instead of at its timeout
        provider.shutdown()
    latencies.sort()  # hits answered locally: a few ms each unless something stalls them
    assert latencies[len(latencies) // 2] < 0.02 and latencies[-3] < 0.2
    if collector == "hung":  # each export waits out its timeout: the queue fills
        assert metrics.trace_spans_dropped._value.get() > 0
    else:  # refused at once: every batch fails, none waits
        assert metrics.trace_export_failures._value.get() > 0


def test_one_json_access_line_per_request_with_trace_ids_and_no_secrets(
    traced: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = traced
    exporter.clear()
    start = ACCESS_LINES.tell()
    headers = auth_headers()
    assert infer(url, MODEL, unique_features(), request_id="req-7").status == 200
    assert httpx.get(f"{url}/v2/models/{MODEL}", headers=headers).status_code == 200
    assert (
        httpx.get(f"{url}/v2/models/{MODEL}", headers={"X-API-Key": "gwk_secretish"}).status_code
        == 401
    )

    def written() -> str:  # lines are written together, up to 0.1 s later
        ACCESS_LINES.seek(start)
        return ACCESS_LINES.read().decode()

    eventually(lambda: written().count("\n") >= 3, what="three access lines")
    text = written()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["route"] for line in lines] == [
        "/v2/models/{model}/infer",
        "/v2/models/{model}",
        "/v2/models/{model}",
    ]
    infer_line = lines[0]
    assert infer_line["event"] == "access" and infer_line["status"] == 200
    assert (
        infer_line["model"] == MODEL
        and infer_line["version"] == "2"
        and infer_line["cache"] == "miss"
    )
    assert len(infer_line["trace_id"]) == 32 and len(infer_line["span_id"]) == 16
    (server,) = [s for s in exporter.get_finished_spans() if s.name == SERVER_SPAN]
    assert server.context is not None
    assert infer_line["trace_id"] == format(server.context.trace_id, "032x")
    assert infer_line["key_id"] and lines[2]["status"] == 401
    assert infer_line["logger"] == "gateway.access" and infer_line["message"].endswith(" 200")
    assert (
        ADMIN_KEY not in text
        and ADMIN_KEY.split("_")[2] not in text
        and "gwk_secretish" not in text
    )

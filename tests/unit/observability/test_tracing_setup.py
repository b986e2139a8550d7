"""Tracing is configured from OTEL_* variables, and off (a no-op) without them."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Sequence

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from devstack.triton import triton_trace_arguments
from devstack.up import _embedded_triton_tracing
from gateway.observability.metrics import Metrics
from gateway.observability.otlp_json import OtlpJsonSpanExporter, encode_spans, traces_endpoint
from gateway.observability.sampling import HeadSampledTracerProvider
from gateway.observability.spans import Spans, get_tracer
from gateway.observability.tracing import (
    CountingBatchSpanProcessor,
    tracer_provider,
    tracer_provider_from_environment,
)
from gateway.settings import Settings
from tests.support.polling import eventually


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
    ):
        monkeypatch.delenv(name, raising=False)


def test_off_without_an_endpoint_or_console() -> None:
    assert tracer_provider_from_environment(Metrics()) is None
    assert not get_tracer(None).start_span("x").is_recording()


def test_console_and_otlp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = tracer_provider_from_environment(Metrics())
    assert isinstance(provider, TracerProvider)
    provider.shutdown()
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    provider = tracer_provider_from_environment(Metrics())
    assert isinstance(provider, TracerProvider)
    assert get_tracer(provider).start_span("x").is_recording()
    provider.shutdown()
    assert traces_endpoint() == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracer_provider_from_environment(Metrics()) is None


def test_triton_gets_host_port_path_and_its_own_service_name() -> None:
    arguments = triton_trace_arguments("http://127.0.0.1:4318/v1/traces")
    assert "--trace-config=opentelemetry,url=127.0.0.1:4318/v1/traces" in arguments
    assert "--trace-config=mode=opentelemetry" in arguments
    assert "--trace-config=opentelemetry,resource=service.name=triton" in arguments


def test_the_embedded_triton_traces_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Triton 2.51 crashes with tracing under load (Triton issue 7795): off by default."""
    assert _embedded_triton_tracing(Settings()) == []  # no collector: nothing to decide
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert _embedded_triton_tracing(Settings()) == []
    assert "Triton issue 7795" in caplog.text
    asked = _embedded_triton_tracing(Settings(triton_tracing=True))
    assert asked == triton_trace_arguments("http://127.0.0.1:4318/v1/traces")


def test_otlp_json_is_the_default_protocol_and_protobuf_can_be_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=a%20b")

    def exporter_of(provider: TracerProvider | None) -> object:
        assert provider is not None
        processor = provider._active_span_processor._span_processors[0]
        exporter = processor._batch_processor._exporter._inner  # type: ignore[attr-defined]
        provider.shutdown()
        return exporter

    exporter = exporter_of(tracer_provider_from_environment(Metrics()))
    assert isinstance(exporter, OtlpJsonSpanExporter)
    assert exporter.endpoint == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert isinstance(exporter_of(tracer_provider_from_environment(Metrics())), OTLPSpanExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    with pytest.raises(ValueError, match="http/json"):
        tracer_provider_from_environment(Metrics())


def test_otlp_json_is_the_protobuf_schema_in_json(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider(exporter, Metrics())
    tracer = get_tracer(provider)
    with tracer.start_as_current_span(
        "POST /v2/models/{model}/infer", kind=SpanKind.SERVER, attributes={"a": "b", "n": 3}
    ) as server:
        server.set_attribute("ok", True)
        server.set_attribute("ratio", 0.5)
        server.set_attribute("list", ["x", "y"])
        server.add_event("retry", {"attempt": 1})
        with tracer.start_as_current_span("triton.infer", kind=SpanKind.CLIENT) as call:
            call.set_status(StatusCode.ERROR, "Triton answered 503")
    provider.force_flush()
    document = encode_spans(exporter.get_finished_spans())
    # The JSON mapping of the protobuf, but ids in hex: swap them for what json_format reads.
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64encode(bytes.fromhex(span[name])).decode()
    request = json_format.Parse(orjson.dumps(document), ExportTraceServiceRequest())
    (resource,) = request.resource_spans
    assert {a.key for a in resource.resource.attributes} >= {"service.name"}
    call_span, server_span = resource.scope_spans[0].spans
    assert server_span.kind == server_span.SPAN_KIND_SERVER
    assert call_span.kind == call_span.SPAN_KIND_CLIENT
    assert call_span.parent_span_id == server_span.span_id
    assert call_span.trace_id == server_span.trace_id and len(server_span.trace_id) == 16
    assert call_span.status.code == call_span.status.STATUS_CODE_ERROR
    assert call_span.status.message == "Triton answered 503"
    values = {a.key: a.value for a in server_span.attributes}
    assert values["a"].string_value == "b" and values["n"].int_value == 3
    assert values["ok"].bool_value is True and values["ratio"].double_value == 0.5
    assert [v.string_value for v in values["list"].array_value.values] == ["x", "y"]
    assert server_span.events[0].name == "retry"
    assert server_span.end_time_unix_nano > server_span.start_time_unix_nano > 0
    provider.shutdown()


def test_head_sampling_draws_roots_before_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    provider = tracer_provider_from_environment(Metrics())
    assert provider is not None and getattr(provider, "root_ratio", None) == 0.25
    spans = Spans(provider)
    drawn = 0
    for _ in range(4000):
        with spans.start("r", kind=SpanKind.SERVER) as span:
            drawn += span.is_recording()
            if not span.is_recording():  # the callee learns the trace was not kept
                assert spans.propagation_headers()["traceparent"].endswith("-00")
    assert 800 <= drawn <= 1200  # binomial(4000, 0.25): mean 1000, sd 27
    # A caller's sampled traceparent is always followed.
    caller = propagate.extract({"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
    for _ in range(50):
        with spans.start("r", kind=SpanKind.SERVER, context=caller) as span:
            assert span.is_recording()
            assert spans.propagation_headers()["traceparent"].endswith("-01")
    provider.shutdown()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    other = tracer_provider_from_environment(Metrics())
    assert other is not None and not hasattr(other, "root_ratio")
    other.shutdown()


def test_requests_not_drawn_are_traced_when_they_fail_or_are_slow() -> None:
    exporter = InMemorySpanExporter()
    provider = HeadSampledTracerProvider(0.0)  # no request is drawn
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = Spans(provider, slow_s=0.5)
    attributes = {"gateway.model": "m"}
    for status, age_s in ((200, 0.0), (503, 0.0), (200, 2.0), (404, 0.0)):
        started_ns = time.time_ns() - int(age_s * 1e9)
        with spans.start("POST /infer", attributes, kind=SpanKind.SERVER) as span:
            assert not span.is_recording()
        spans.keep_notable(span, "POST /infer", started_ns, status, attributes)
    # the routes FastAPI's instrumentation traces are sampled by the ratio, here never
    assert not provider.get_tracer("fastapi").start_span("GET /v2/models/m").is_recording()
    kept = exporter.get_finished_spans()
    assert [(s.attributes or {}).get("gateway.trace.kept") for s in kept] == ["error", "slow"]
    error, slow = kept
    assert error.status.status_code is StatusCode.ERROR and error.kind is SpanKind.SERVER
    assert (error.attributes or {})["http.response.status_code"] == 503
    assert slow.end_time is not None and slow.start_time is not None
    assert slow.end_time - slow.start_time >= 2e9  # the request's whole time
    provider.shutdown()


def test_spans_are_exported_in_large_batches_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def batching(provider: TracerProvider) -> tuple[int, int]:
        batch = provider._active_span_processor._span_processors[0]._batch_processor  # type: ignore[attr-defined]
        sizes = (batch._max_queue_size, batch._max_export_batch_size)
        provider.shutdown()
        return sizes

    assert batching(tracer_provider(InMemorySpanExporter(), Metrics())) == (8192, 2048)
    small = tracer_provider(InMemorySpanExporter(), Metrics(), max_queue_size=64)
    assert batching(small) == (64, 64)
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "1000")  # the operator's: the SDK's batch
    assert batching(tracer_provider(InMemorySpanExporter(), Metrics())) == (1000, 512)
    monkeypatch.delenv("OTEL_BSP_MAX_QUEUE_SIZE")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100")
    assert batching(tracer_provider(InMemorySpanExporter(), Metrics())) == (8192, 100)


def test_reused_attribute_encodings_keep_each_values_type() -> None:
    """True == 1 == 1.0 in Python, and encoded attributes are reused by value: the type is
    part of what they are reused by, alone and in whole attribute sets."""
    exporter = InMemorySpanExporter()
    provider = tracer_provider(exporter, Metrics())
    tracer = get_tracer(provider)
    for _ in range(2):  # the second round comes from the reused encodings
        for value in (True, 1, 1.0, ["x"]):
            with tracer.start_as_current_span("s", attributes={"a": "b", "v": value}):
                pass
    provider.force_flush()
    document = encode_spans(exporter.get_finished_spans())
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    values = [{a["key"]: a["value"] for a in span["attributes"]}["v"] for span in spans]
    expected = [
        {"boolValue": True},
        {"intValue": "1"},
        {"doubleValue": 1.0},
        {"arrayValue": {"values": [{"stringValue": "x"}]}},
    ]
    assert values == expected * 2
    provider.shutdown()


class GatedExporter(SpanExporter):
    """An exporter at the boundary: records batch sizes, and holds each export until
    `gate` opens (`exporting` says one is under way)."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.exporting = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exporting.set()
        self.gate.wait(30)
        self.batches.append(len(spans))
        return SpanExportResult.SUCCESS


def test_the_batch_processor_queues_wakes_at_a_full_batch_counts_drops_and_stops() -> None:
    exporter, metrics = GatedExporter(), Metrics()
    processor = CountingBatchSpanProcessor(
        exporter, metrics, max_queue_size=8, max_export_batch_size=4, schedule_delay_millis=60_000
    )
    assert processor._direct  # the SDK's internals are as expected: spans queued directly
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = get_tracer(provider)

    def end(count: int) -> None:
        for _ in range(count):
            tracer.start_span("s").end()

    end(4)  # a full batch wakes the export thread (its schedule is a minute away)
    assert exporter.exporting.wait(30)
    end(8)  # the queue is full while the first batch is being exported
    end(2)  # dropped, and counted
    assert metrics.trace_spans_dropped._value.get() == 2
    exporter.gate.set()
    eventually(lambda: sum(exporter.batches) == 12, what="12 spans exported")
    provider.shutdown()
    end(1)  # after shutdown: ignored, no error
    assert sum(exporter.batches) == 12

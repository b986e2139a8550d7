"""Request spans built without the SDK's span machinery: the same spans, exported the same
way, sampled as the configured sampler would."""

from __future__ import annotations

import base64

import orjson
from google.protobuf import json_format
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_protobuf
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.observability.light_spans import LightSpan
from gateway.observability.otlp_json import encode_spans
from gateway.observability.sampling import HeadSampledTracerProvider
from gateway.observability.spans import Spans

CALLER_TRACE = "ab" * 16
CALLER_SPAN = "cd" * 8


def recorded(provider: TracerProvider) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def caller(flags: str) -> object:
    return propagate.extract({"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}"})


def test_a_request_is_a_server_span_and_a_client_span_per_triton_call() -> None:
    provider = TracerProvider()  # the SDK's default sampler: parent-based, always on
    exporter = recorded(provider)
    spans = Spans(provider, detailed=False)
    with spans.start("POST /infer", {"gateway.model": "m"}, kind=SpanKind.SERVER) as server:
        assert isinstance(server, LightSpan) and server.is_recording()
        with spans.start("auth", {"gateway.key_id": "k1"}):  # a stage: attributes only
            pass
        with spans.start("triton.infer", kind=SpanKind.CLIENT) as call:
            headers = spans.propagation_headers()
            call.set_status(StatusCode.ERROR, "Triton answered 503")
        server.set_attribute("http.response.status_code", 503)
        server.record_exception(RuntimeError("boom"))
    server.set_attribute("late", True)  # ended: ignored, as the SDK does
    server.end()  # a second end exports nothing more
    client_span, server_span = exporter.get_finished_spans()
    assert server_span.attributes == {
        "gateway.model": "m",
        "gateway.key_id": "k1",
        "http.response.status_code": 503,
    }
    assert server_span.events[0].name == "exception"
    assert (server_span.events[0].attributes or {})["exception.type"] == "RuntimeError"
    assert server_span.parent is None and server_span.kind is SpanKind.SERVER
    assert client_span.parent == server_span.context
    assert client_span.status.status_code is StatusCode.ERROR
    assert client_span.status.description == "Triton answered 503"
    server_context, client_context = server_span.context, client_span.context
    assert server_context is not None and client_context is not None
    assert client_context.trace_id == server_context.trace_id
    assert headers["traceparent"] == (
        f"00-{client_context.trace_id:032x}-{client_context.span_id:016x}-03"
    )
    assert server_span.resource is provider.resource
    assert server_span.instrumentation_scope is not None
    assert server_span.instrumentation_scope.name == "gateway"
    start, end = server_span.start_time, server_span.end_time
    assert start is not None and end is not None and end >= start
    provider.shutdown()


def test_both_exporters_encode_them() -> None:
    provider = TracerProvider()
    exporter = recorded(provider)
    spans = Spans(provider, detailed=False)
    with (
        spans.start("POST /infer", {"n": 3, "ok": True}, kind=SpanKind.SERVER),
        spans.start("triton.infer", kind=SpanKind.CLIENT),
    ):
        pass
    finished = exporter.get_finished_spans()
    # The SDK's protobuf encoding (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf).
    message = encode_protobuf(finished)
    call, request = message.resource_spans[0].scope_spans[0].spans
    assert request.kind == request.SPAN_KIND_SERVER and call.parent_span_id == request.span_id
    # The gateway's JSON encoding, read back by the protobuf schema (ids swapped to base64).
    document = encode_spans(finished)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for name in ("traceId", "spanId", "parentSpanId"):
            if name in span:
                span[name] = base64.b64encode(bytes.fromhex(span[name])).decode()
    parsed = json_format.Parse(orjson.dumps(document), ExportTraceServiceRequest())
    expected = message.resource_spans[0].scope_spans[0].spans
    for span in expected:
        span.flags = 0  # the parent's is-remote bits, which the JSON encoding leaves out
    assert list(parsed.resource_spans[0].scope_spans[0].spans) == list(expected)
    provider.shutdown()


def test_a_callers_trace_is_continued_or_left_unsampled() -> None:
    provider = TracerProvider()
    exporter = recorded(provider)
    spans = Spans(provider, detailed=False)
    with spans.start("r", kind=SpanKind.SERVER, context=caller("01")) as span:  # type: ignore[arg-type]
        assert span.is_recording()
    (continued,) = exporter.get_finished_spans()
    assert continued.context is not None and continued.parent is not None
    assert f"{continued.context.trace_id:032x}" == CALLER_TRACE
    assert f"{continued.parent.span_id:016x}" == CALLER_SPAN
    with spans.start("r", kind=SpanKind.SERVER, context=caller("00")) as span:  # type: ignore[arg-type]
        assert not span.is_recording()
        with spans.start("triton.infer", kind=SpanKind.CLIENT) as call:
            assert not call.is_recording()
        # Triton hears the caller's trace, unsampled.
        assert spans.propagation_headers()["traceparent"] == (f"00-{CALLER_TRACE}-{CALLER_SPAN}-00")
    assert len(exporter.get_finished_spans()) == 1
    provider.shutdown()

    always = TracerProvider(sampler=sampling.ALWAYS_ON)
    exporter = recorded(always)
    spans = Spans(always, detailed=False)
    with spans.start("r", kind=SpanKind.SERVER, context=caller("00")) as span:  # type: ignore[arg-type]
        assert isinstance(span, LightSpan) and span.is_recording()
    assert len(exporter.get_finished_spans()) == 1
    always.shutdown()


def test_head_sampling_draws_the_light_roots() -> None:
    provider = HeadSampledTracerProvider(0.25)
    exporter = recorded(provider)
    spans = Spans(provider, detailed=False)
    for _ in range(4000):
        with spans.start("r", kind=SpanKind.SERVER):
            pass
    finished = exporter.get_finished_spans()
    assert 800 <= len(finished) <= 1200  # binomial(4000, 0.25): mean 1000, sd 27
    assert all(isinstance(span, LightSpan) for span in finished)
    provider.shutdown()


def test_other_samplers_and_detailed_spans_go_through_the_sdk() -> None:
    for provider, detailed in (
        (TracerProvider(sampler=sampling.TraceIdRatioBased(1.0)), False),
        (TracerProvider(), True),
    ):
        exporter = recorded(provider)
        spans = Spans(provider, detailed=detailed)
        with spans.start("r", kind=SpanKind.SERVER) as span:
            assert span.is_recording() and not isinstance(span, LightSpan)
            assert isinstance(trace.get_current_span(), type(span))
        assert len(exporter.get_finished_spans()) == 1
        provider.shutdown()


def test_head_sampling_keeps_a_failed_request_once_and_ignores_unreadable_parents() -> None:
    provider = HeadSampledTracerProvider(0.5)
    exporter = recorded(provider)
    spans = Spans(provider, detailed=False)
    for _ in range(200):  # until one request is drawn
        with spans.start("r", kind=SpanKind.SERVER) as span:
            pass
        if span.get_span_context().trace_flags.sampled:
            break
    spans.keep_notable(span, "r", 0, 503, {})  # drawn and exported: not kept a second time
    assert len(exporter.get_finished_spans()) == 1
    provider.shutdown()

    never = HeadSampledTracerProvider(0.0)
    exporter = recorded(never)
    spans = Spans(never, detailed=False)
    garbled = propagate.extract({"traceparent": "00-not-a-trace-01"})
    for _ in range(20):  # a traceparent that cannot be read is a root, drawn as any other
        with spans.start("r", kind=SpanKind.SERVER, context=garbled) as span:
            assert not span.is_recording()
    assert exporter.get_finished_spans() == ()
    never.shutdown()


def test_stages_go_to_their_request_or_else_to_whatever_span_is_current() -> None:
    provider = HeadSampledTracerProvider(0.0)  # no request is drawn
    spans = Spans(provider, detailed=False)
    routes = TracerProvider()  # e.g. FastAPI's instrumentation, making its spans current
    exporter = recorded(routes)
    with routes.get_tracer("routes").start_as_current_span("GET /admin", kind=SpanKind.SERVER):
        with spans.start("auth", {"gateway.key_id": "admin"}):  # no request span: the route's
            pass
        with spans.start("POST /infer", kind=SpanKind.SERVER) as request:  # not drawn
            assert not request.is_recording()
            with spans.start("auth", {"gateway.key_id": "k1"}) as stage:
                assert not stage.is_recording()  # nothing to record, not the route's span
        with spans.start("cache.lookup", {"gateway.cache.tier": "local"}):  # the route's again
            pass
    (admin,) = exporter.get_finished_spans()
    assert admin.attributes == {"gateway.key_id": "admin", "gateway.cache.tier": "local"}
    provider.shutdown()
    routes.shutdown()

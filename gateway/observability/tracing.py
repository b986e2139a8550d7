"""OpenTelemetry tracing, configured from the standard `OTEL_*` environment variables.

- `OTEL_TRACES_EXPORTER`: `otlp` (the default when `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set), `console` (development), or `none`.
  Without an endpoint and without `console`, tracing is off and costs next to nothing.
- The OTLP/HTTP exporter reads its endpoint, headers and timeout from `OTEL_EXPORTER_OTLP_*`;
  the sampler comes from `OTEL_TRACES_SAMPLER` / `_ARG` (default: parent-based, always on);
  `OTEL_SERVICE_NAME` names the service (default `gateway`).

A dead or slow collector never slows requests: finished spans go into a bounded queue
(`OTEL_BSP_MAX_QUEUE_SIZE`, 2048) that a background thread exports in batches. When the
queue is full, spans are dropped and counted (`gateway_trace_spans_dropped_total`), and
failed exports are counted (`gateway_trace_export_failures_total`); the state change
(failing / working again) is logged once each time.

The W3C `traceparent` of the current span goes to Triton as gRPC metadata, so Triton's own
spans (when Triton traces with `--trace-config mode=opentelemetry`) join the same trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)

from gateway.metrics import Metrics

logger = logging.getLogger(__name__)

TRACER_NAME = "gateway"


class MeteredExporter(SpanExporter):
    """Counts failed exports and logs each change between failing and working once."""

    def __init__(self, inner: SpanExporter, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self._failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - an exporter must never break the app
            logger.debug("span export raised %s", type(exc).__name__)
            result = SpanExportResult.FAILURE
        failed = result is not SpanExportResult.SUCCESS
        if failed:
            self._metrics.trace_export_failures.inc()
        if failed != self._failing:
            self._failing = failed
            if failed:
                logger.warning("trace export is failing; spans are being dropped")
            else:
                logger.info("trace export works again")
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor, counting the spans it drops when its queue is full."""

    def __init__(self, exporter: SpanExporter, metrics: Metrics, **options: Any) -> None:
        super().__init__(exporter, **options)
        self._metrics = metrics
        # The SDK keeps its queue private; without it, drops are simply not counted.
        batch = getattr(self, "_batch_processor", None)
        self._queue = getattr(batch, "_queue", None)
        self._capacity = getattr(batch, "_max_queue_size", 0)

    def on_end(self, span: ReadableSpan) -> None:
        sampled = span.context is not None and span.context.trace_flags.sampled
        if sampled and self._queue is not None and len(self._queue) >= self._capacity:
            self._metrics.trace_spans_dropped.inc()
        super().on_end(span)


def tracer_provider_from_environment(metrics: Metrics) -> TracerProvider | None:
    """A provider built from OTEL_* variables, or None when tracing is off."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if exporter_name == "none" or (not endpoint and exporter_name != "console"):
        return None
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    return tracer_provider(exporter, metrics)


def tracer_provider(exporter: SpanExporter, metrics: Metrics, **options: Any) -> TracerProvider:
    """A provider exporting through `exporter` in the background, drops counted."""
    service = os.environ.get("OTEL_SERVICE_NAME", "gateway")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        CountingBatchSpanProcessor(MeteredExporter(exporter, metrics), metrics, **options)
    )
    # The SDK warns once per dropped span and the exporter once per retry: we count instead.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
    logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.ERROR)
    return provider


def traceparent_metadata() -> list[tuple[str, str]]:
    """The current trace context as gRPC metadata (W3C `traceparent`, `tracestate`)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def get_tracer(provider: trace.TracerProvider | None) -> trace.Tracer:
    """The gateway's tracer; a no-op one when tracing is off."""
    return (provider or trace.NoOpTracerProvider()).get_tracer(TRACER_NAME)


# One shared do-nothing context: what every span costs while tracing is off.
_NO_SPAN: AbstractContextManager[trace.Span] = nullcontext(trace.INVALID_SPAN)


class Spans:
    """Starts the gateway's spans; with tracing off it does nothing at all.

    OpenTelemetry's no-op tracer still sets up and tears down a context per span, and the
    SDK builds a span object even for a request its sampler drops; both show on the hot
    path. So: with tracing off every span is one shared null context, and a child of a
    span that is not recording (a request not sampled) is skipped, as it would not be
    recorded either. A request costs one span unless it is sampled.
    """

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self._tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start(
        self,
        name: str,
        attributes: Mapping[str, str | int | bool] | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        context: Context | None = None,
    ) -> AbstractContextManager[trace.Span]:
        if self._tracer is None:
            return _NO_SPAN
        if kind is not trace.SpanKind.SERVER and not trace.get_current_span().is_recording():
            return _NO_SPAN
        return self._tracer.start_as_current_span(
            name, context=context, kind=kind, attributes=attributes, record_exception=False
        )

    def begin(
        self, name: str, attributes: Mapping[str, str | int | bool] | None = None
    ) -> trace.Span:
        """A child span of the current one that is not made current: for work that goes on
        after its request (the caller ends it)."""
        if self._tracer is None or not trace.get_current_span().is_recording():
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, attributes=attributes, record_exception=False)


def otlp_traces_url() -> str | None:
    """The OTLP/HTTP traces URL the OTEL_* variables configure, if any."""
    explicit = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if explicit:
        return explicit
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else None


def triton_trace_arguments(traces_url: str) -> list[str]:
    """tritonserver options that send its OpenTelemetry spans to `traces_url`.

    Triton continues the trace of an incoming `traceparent` (the gateway sends one with
    every call), so its spans join the gateway's traces.
    """
    address = traces_url.split("://", 1)[-1]  # Triton takes host:port/path
    return [
        "--trace-config=mode=opentelemetry",
        "--trace-config=rate=1",
        "--trace-config=level=TIMESTAMPS",
        f"--trace-config=opentelemetry,url={address}",
        "--trace-config=opentelemetry,resource=service.name=triton",
    ]

"""The tracer provider: OpenTelemetry tracing, configured from the standard `OTEL_*` variables.

- `OTEL_TRACES_EXPORTER`: `otlp` (the default when `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set), `console` (development), or `none`.
  Without an endpoint and without `console`, tracing is off and costs next to nothing.
- `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`: `http/json` (the default here: `otlp_json.py`,
  a sixth of the SDK encoder's cost per span) or `http/protobuf` (the SDK's exporter).
  Endpoint, headers, timeout and compression come from `OTEL_EXPORTER_OTLP_*`;
  `OTEL_SERVICE_NAME` names the service (default `gateway`).
- The sampler comes from `OTEL_TRACES_SAMPLER` / `_ARG` (default: parent-based, always on);
  `parentbased_traceidratio` is drawn ahead of the SDK (`sampling.py`).

A dead or slow collector never slows requests: finished spans go into a bounded queue
(`OTEL_BSP_MAX_QUEUE_SIZE`, 8192 here) that a background thread exports in batches of
`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (2048 here; at the SDK's 512 a traced cache hit took ~6 %
more CPU: every export has a fixed cost in the export thread). When the
queue is full, spans are dropped and counted (`gateway_trace_spans_dropped_total`), and
failed exports are counted (`gateway_trace_export_failures_total`); the state change
(failing / working again) is logged once each time.

The W3C `traceparent` of the current span goes to Triton as an HTTP header of each
inference call (`Spans.propagation_headers`), so Triton's own spans (when Triton traces with
`--trace-config mode=opentelemetry`) join the same trace.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)

from gateway.observability.metrics import Metrics
from gateway.observability.otlp_json import OtlpJsonSpanExporter, traces_endpoint
from gateway.observability.sampling import (
    HeadSampledTracerProvider,
    root_ratio_from_environment,
)

logger = logging.getLogger(__name__)


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
    """The SDK's batch processor, counting the spans it drops when its queue is full.

    A span is queued the way the SDK's `BatchProcessor.emit` does (append, wake the export
    thread once a batch is full) but without its `os.getpid()` per span, a fork check that
    the SDK's own at-fork hook (`os.register_at_fork`) already covers. py-spy put ~5 % of a
    traced cache hit on that line; a microbenchmark puts the SDK's whole `emit` at 0.7 µs,
    so the saving is small and not measured on its own (hot-path.md). Where the SDK's
    internals are not what this expects, its own path is taken.
    """

    def __init__(self, exporter: SpanExporter, metrics: Metrics, **options: Any) -> None:
        super().__init__(exporter, **options)
        self._metrics = metrics
        # The SDK keeps its queue private; without it, drops are simply not counted.
        self._batch = getattr(self, "_batch_processor", None)
        self._queue: deque[ReadableSpan] | None = getattr(self._batch, "_queue", None)
        self._capacity = getattr(self._batch, "_max_queue_size", 0)
        self._batch_size: int | None = getattr(self._batch, "_max_export_batch_size", None)
        self._direct = (
            isinstance(self._queue, deque)
            and self._batch_size is not None
            and hasattr(os, "register_at_fork")
            and isinstance(getattr(self._batch, "_worker_awaken", None), threading.Event)
            and getattr(self._batch, "_shutdown", None) is False
        )

    def on_end(self, span: ReadableSpan) -> None:
        if not (span.context is not None and span.context.trace_flags.sampled):
            return
        queue = self._queue
        if queue is not None and len(queue) >= self._capacity:
            self._metrics.trace_spans_dropped.inc()
        batch = self._batch
        if not self._direct or batch is None or queue is None or batch._shutdown:
            super().on_end(span)  # the SDK's way (and its handling of a shut-down processor)
            return
        queue.appendleft(span)  # bounded: drops the oldest when full, as the SDK's emit
        if len(queue) >= cast(int, self._batch_size):
            awaken = batch._worker_awaken  # replaced by the at-fork hook: read it each time
            if not awaken.is_set():
                awaken.set()


def tracer_provider_from_environment(metrics: Metrics) -> TracerProvider | None:
    """A provider built from OTEL_* variables, or None when tracing is off."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter_name == "none" or (traces_endpoint() is None and exporter_name != "console"):
        return None
    exporter: SpanExporter
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/json"
    ).strip()
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif protocol == "http/json":
        exporter = OtlpJsonSpanExporter.from_environment()
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported by the gateway; "
            "use http/json (the default) or http/protobuf"
        )
    return tracer_provider(exporter, metrics, root_ratio=root_ratio_from_environment())


# The gateway's batching defaults, where the OTEL_BSP_* variables leave them to it.
BATCH_QUEUE_SIZE = 8192
BATCH_EXPORT_SIZE = 2048


def tracer_provider(
    exporter: SpanExporter, metrics: Metrics, root_ratio: float | None = None, **options: Any
) -> TracerProvider:
    """A provider exporting through `exporter` in the background, drops counted; with
    `root_ratio`, root spans are drawn by `Spans` (see HeadSampledTracerProvider)."""
    if "OTEL_BSP_MAX_QUEUE_SIZE" not in os.environ:
        options.setdefault("max_queue_size", BATCH_QUEUE_SIZE)
        if "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" not in os.environ:  # never above the queue's
            batch = min(BATCH_EXPORT_SIZE, options["max_queue_size"])
            options.setdefault("max_export_batch_size", batch)
    service = os.environ.get("OTEL_SERVICE_NAME", "gateway")
    resource = Resource.create({"service.name": service})
    provider = (
        TracerProvider(resource=resource)
        if root_ratio is None
        else HeadSampledTracerProvider(root_ratio, resource=resource)
    )
    provider.add_span_processor(
        CountingBatchSpanProcessor(MeteredExporter(exporter, metrics), metrics, **options)
    )
    # The SDK warns once per dropped span and the exporter once per retry: we count instead.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
    logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.ERROR)
    return provider

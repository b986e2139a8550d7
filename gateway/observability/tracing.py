"""OpenTelemetry tracing, configured from the standard `OTEL_*` environment variables.

- `OTEL_TRACES_EXPORTER`: `otlp` (the default when `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set), `console` (development), or `none`.
  Without an endpoint and without `console`, tracing is off and costs next to nothing.
- `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`: `http/json` (the default here: `otlp_json.py`,
  a sixth of the SDK encoder's cost per span) or `http/protobuf` (the SDK's exporter).
  Endpoint, headers, timeout and compression come from `OTEL_EXPORTER_OTLP_*`;
  `OTEL_SERVICE_NAME` names the service (default `gateway`).
- The sampler comes from `OTEL_TRACES_SAMPLER` / `_ARG` (default: parent-based, always on).
  With `parentbased_traceidratio` (the production setting in deploy/), a request that
  carries no `traceparent` is drawn before any span is built: one not drawn costs nothing
  (the SDK would build a non-recording span and context for it); a caller's sampled or
  unsampled `traceparent` is followed as the parent-based sampler does.

A dead or slow collector never slows requests: finished spans go into a bounded queue
(`OTEL_BSP_MAX_QUEUE_SIZE`, 8192 here) that a background thread exports in batches of
`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (2048 here; at the SDK's 512 a traced cache hit took ~6 %
more CPU: every export has a fixed cost in the export thread). When the
queue is full, spans are dropped and counted (`gateway_trace_spans_dropped_total`), and
failed exports are counted (`gateway_trace_export_failures_total`); the state change
(failing / working again) is logged once each time.

The W3C `traceparent` of the current span goes to Triton as gRPC metadata, so Triton's own
spans (when Triton traces with `--trace-config mode=opentelemetry`) join the same trace.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)

from gateway.observability.light_spans import light_tracer
from gateway.observability.metrics import Metrics
from gateway.observability.otlp_json import OtlpJsonSpanExporter, traces_endpoint

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


# Set while `Spans` starts a root span it has drawn itself: the sampler then records it.
_DRAWN: ContextVar[bool] = ContextVar("gateway_trace_drawn", default=False)


class _DrawnOrRatio(sampling.Sampler):
    """Roots that `Spans` drew are sampled; other roots (the routes FastAPI's
    instrumentation traces) by trace-id ratio, as `parentbased_traceidratio` would."""

    def __init__(self, ratio: float) -> None:
        self._ratio = sampling.TraceIdRatioBased(ratio)

    def should_sample(self, *args: Any, **kwargs: Any) -> sampling.SamplingResult:
        chosen = sampling.ALWAYS_ON if _DRAWN.get() else self._ratio
        return chosen.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return f"DrawnByGatewayOr{self._ratio.get_description()}"


class HeadSampledTracerProvider(TracerProvider):
    """A provider whose inference requests' root spans are drawn by `Spans` with
    `root_ratio` before the SDK is called (see _DrawnOrRatio)."""

    def __init__(self, root_ratio: float, **options: Any) -> None:
        super().__init__(sampler=sampling.ParentBased(_DrawnOrRatio(root_ratio)), **options)
        self.root_ratio = root_ratio


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
    return tracer_provider(exporter, metrics, root_ratio=_root_ratio_from_environment())


def _root_ratio_from_environment() -> float | None:
    """The ratio of `parentbased_traceidratio`, drawn ahead of the SDK; None otherwise."""
    if os.environ.get("OTEL_TRACES_SAMPLER", "").strip() != "parentbased_traceidratio":
        return None
    try:
        ratio = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
    except ValueError:
        return 1.0  # as the SDK reads an unparsable argument
    return min(max(ratio, 0.0), 1.0)


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


def get_tracer(provider: trace.TracerProvider | None) -> trace.Tracer:
    """The gateway's tracer; a no-op one when tracing is off."""
    return (provider or trace.NoOpTracerProvider()).get_tracer(TRACER_NAME)


class _Current(AbstractContextManager[trace.Span]):
    """`span` made current until the block ends, then ended: what the SDK's
    `start_as_current_span` does, without its two generator-based context managers (a
    third of a span's cost on the request path, measured). A request's SERVER span is also
    kept as `_REQUEST`."""

    __slots__ = ("_request", "_request_token", "_span", "_token")

    def __init__(self, span: trace.Span, request: bool = False) -> None:
        self._span = span
        self._token: object = None
        self._request = request
        self._request_token: Token[trace.Span | None] | None = None

    def __enter__(self) -> trace.Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        if self._request:
            self._request_token = _REQUEST.set(self._span)
        return self._span

    def __exit__(self, kind: type[BaseException] | None, error: object, tb: object) -> None:
        if self._request_token is not None:
            _REQUEST.reset(self._request_token)
        otel_context.detach(self._token)  # type: ignore[arg-type]
        if isinstance(error, Exception) and self._span.is_recording():
            self._span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
        self._span.end()


class _LeftOut(AbstractContextManager[trace.Span]):
    """A request that head sampling left out: no span, but `_REQUEST` says so, so its
    stages know at once that there is nothing to record. One shared instance: it keeps no
    state (a request's own task starts without `_REQUEST` set, and ends with it unset)."""

    __slots__ = ()

    def __enter__(self) -> trace.Span:
        _REQUEST.set(trace.INVALID_SPAN)
        return trace.INVALID_SPAN

    def __exit__(self, kind: type[BaseException] | None, error: object, tb: object) -> None:
        _REQUEST.set(None)


_LEFT_OUT = _LeftOut()


# The SERVER span `Spans` started for the request in progress (INVALID_SPAN: left out by
# head sampling): where its stages put their attributes. A context variable read directly;
# finding the current span through OpenTelemetry's context API cost ~1 µs per stage. Unset
# outside the requests Spans starts (FastAPI's instrumented routes): there the stages ask
# OpenTelemetry.
_REQUEST: ContextVar[trace.Span | None] = ContextVar("gateway_request_span", default=None)


def _current(kind: trace.SpanKind) -> trace.Span:
    """The span a stage (INTERNAL) belongs to: its request's (`_REQUEST`) where Spans
    started one; for anything else, OpenTelemetry's current span."""
    if kind is trace.SpanKind.INTERNAL:
        request = _REQUEST.get()
        if request is not None:
            return request
    return trace.get_current_span()


def _has_parent(context: Context) -> bool:
    return trace.get_current_span(context).get_span_context().is_valid


# One shared do-nothing context: what every span costs while tracing is off.
_NO_SPAN: AbstractContextManager[trace.Span] = nullcontext(trace.INVALID_SPAN)


class Spans:
    """Starts the gateway's spans; with tracing off it does nothing at all.

    OpenTelemetry's no-op tracer still sets up and tears down a context per span, and the
    SDK builds a span object even for a request its sampler drops; both show on the hot
    path. So: with tracing off every span is one shared null context, and a child of a
    span that is not recording (a request not sampled) is skipped, as it would not be
    recorded either. A request costs one span unless it is sampled.

    Detail (GATEWAY_TRACE_SPANS): each span costs the SDK tens of microseconds to build
    and export, as much as a cache hit itself. With `request` (the default) a request is
    its SERVER span plus a CLIENT span per call to Triton (the parent of Triton's own
    spans); the stages inside (`auth`, `cache.lookup`, `cache.store`, single-flight waits)
    set their attributes on the SERVER span instead of opening spans of their own, and
    those spans are built by `light_spans.LightTracer` where the sampler allows (always
    on, parent-based always on, head-sampled ratio), not by the SDK. With `detailed` every
    stage is a span of the SDK with its own timing.
    """

    def __init__(
        self,
        provider: trace.TracerProvider | None = None,
        detailed: bool = True,
        slow_s: float = 0.5,
    ) -> None:
        self._tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None
        self._detailed = detailed
        self._light = (
            light_tracer(
                self._tracer,
                getattr(provider, "sampler", None),
                head_sampled=isinstance(provider, HeadSampledTracerProvider),
            )
            if self._tracer is not None and not detailed
            else None
        )
        self._root_ratio: float = getattr(provider, "root_ratio", 1.0)
        self._slow_ns = slow_s * 1e9

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
        if kind is not trace.SpanKind.SERVER:  # first: stages are most of the calls
            current = _current(kind)
            if not current.is_recording():
                return _NO_SPAN
            if kind is trace.SpanKind.INTERNAL and not self._detailed:
                if attributes:  # a stage: its attributes go on the request span
                    current.set_attributes(attributes)
                return nullcontext(current)
        else:
            if context is not None and not _has_parent(context):
                context = None  # a traceparent that could not be read: a root, drawn as any
            if context is None and not self._drawn():
                return _LEFT_OUT
        if self._light is not None:
            server = kind is trace.SpanKind.SERVER
            if server and context is None:  # no caller's trace context: a root
                return _Current(self._light.root(name, attributes), server)
            parent = trace.get_current_span(context).get_span_context()
            light = self._light.start(name, parent, kind, attributes)
            if light is None:  # a caller's unsampled trace: passed on to Triton as such
                return _Current(trace.NonRecordingSpan(parent), server)
            return _Current(light, server)
        drawn = _DRAWN.set(True) if kind is trace.SpanKind.SERVER and context is None else None
        try:
            span = self._tracer.start_span(
                name, context=context, kind=kind, attributes=attributes, record_exception=False
            )
        finally:
            if drawn is not None:
                _DRAWN.reset(drawn)
        return _Current(span, kind is trace.SpanKind.SERVER)

    def propagation_headers(self) -> dict[str, str]:
        """The W3C trace context (`traceparent`, `tracestate`) for a call made now: the
        current span's; for a request not drawn by head sampling, an unsampled one, so the
        callee knows the trace was not kept; none with tracing off."""
        if self._tracer is None:
            return {}
        carrier: dict[str, str] = {}
        if trace.get_current_span().get_span_context().is_valid:
            propagate.inject(carrier)
        else:  # no span at all: cheaper than the propagators finding nothing to inject
            trace_id, span_id = random.getrandbits(128) or 1, random.getrandbits(64) or 1
            carrier["traceparent"] = f"00-{trace_id:032x}-{span_id:016x}-00"
        return carrier

    def keep_notable(
        self,
        span: trace.Span,
        name: str,
        started_ns: int,
        status: int,
        attributes: Mapping[str, str | int | bool],
    ) -> None:
        """A request that head sampling did not draw but that failed (5xx) or took at least
        the slow threshold is traced after all, as one SERVER span over its whole time:
        head sampling cannot know in advance which requests will matter."""
        if self._tracer is None or self._root_ratio >= 1.0:
            return
        if status < 500 and time.time_ns() - started_ns < self._slow_ns:  # most requests
            return
        if span.get_span_context().trace_flags.sampled:  # traced already (span has ended)
            return
        kept = "error" if status >= 500 else "slow"
        outcome: dict[str, str | int] = {
            "http.response.status_code": status,
            "gateway.trace.kept": kept,
        }
        drawn = _DRAWN.set(True)
        try:
            late = self._tracer.start_span(
                name, kind=trace.SpanKind.SERVER, start_time=started_ns, attributes=attributes
            )
        finally:
            _DRAWN.reset(drawn)
        late.set_attributes(outcome)
        if status >= 500:
            late.set_status(trace.StatusCode.ERROR)
        late.end()

    def _drawn(self) -> bool:
        """Whether a request without a caller's trace context is traced (head sampling)."""
        return self._root_ratio >= 1.0 or random.random() < self._root_ratio  # noqa: S311

    def begin(
        self, name: str, attributes: Mapping[str, str | int | bool] | None = None
    ) -> trace.Span:
        """A child span of the current one that is not made current: for work that goes on
        after its request (the caller ends it). Only with detailed spans."""
        if self._tracer is None or not self._detailed:
            return trace.INVALID_SPAN
        if not trace.get_current_span().is_recording():
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, attributes=attributes, record_exception=False)


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

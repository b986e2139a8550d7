"""`Spans`: how the gateway's request path starts its spans, at the least cost per request.

See `Spans` for what a request's trace holds at each GATEWAY_TRACE_SPANS detail, and
`sampling.py` for head sampling.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context

from gateway.observability.light_spans import light_tracer
from gateway.observability.sampling import DRAWN, HeadSampledTracerProvider

TRACER_NAME = "gateway"


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
        drawn = DRAWN.set(True) if kind is trace.SpanKind.SERVER and context is None else None
        try:
            span = self._tracer.start_span(
                name, context=context, kind=kind, attributes=attributes, record_exception=False
            )
        finally:
            if drawn is not None:
                DRAWN.reset(drawn)
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
        drawn = DRAWN.set(True)
        try:
            late = self._tracer.start_span(
                name, kind=trace.SpanKind.SERVER, start_time=started_ns, attributes=attributes
            )
        finally:
            DRAWN.reset(drawn)
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

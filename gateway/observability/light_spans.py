"""Recording spans for the request path, built without the SDK's span machinery.

A request traced at `GATEWAY_TRACE_SPANS=request` is a SERVER span plus a CLIENT span per
Triton call. Built by the SDK, each cost ~37 µs of CPU with its export (measured: its
sampler, limits, locks and bounded attribute containers, its start and end hooks), as
much as a third of a cache hit. `LightTracer` builds the same spans as plain objects: ids
from the tracer's id generator, the tracer's resource and span processor (so batching,
drop counting and the exporters are the SDK's), attributes in a plain dict. It is used
only where the sampling decision is simple enough to take here (see `light_tracer`):

    always_on                       every span is sampled
    parentbased_always_on (default) a span follows its parent; a root is sampled
    parentbased_traceidratio        the same, roots drawn by `Spans` beforehand

Any other sampler (or `GATEWAY_TRACE_SPANS=detailed`) goes through the SDK as before.
Attributes are the gateway's own (strings, numbers, booleans), few and bounded, so the
SDK's attribute limits and validation are not repeated. Span processors hear of a span when
it ends (`on_end`), not when it starts: the batch and simple processors do nothing on start.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, Tracer, sampling
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

_UNSET = Status(StatusCode.UNSET)


class LightSpan(trace.Span, ReadableSpan):
    """A sampled, recording span: the API's `Span` while it runs, a `ReadableSpan` for the
    span processor once it ends."""

    def __init__(
        self,
        name: str,
        context: trace.SpanContext,
        parent: trace.SpanContext | None,
        kind: trace.SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        tracer: LightTracer,
        start_time: int | None = None,
    ) -> None:
        # ReadableSpan's fields, set directly (its __init__ would build a Resource).
        self._name = name
        self._context = self._own_context = context
        self._parent = parent
        self._kind = kind
        self._attributes: dict[str, Any] = dict(attributes) if attributes else {}
        self._events: list[Event] = []
        self._links: Sequence[trace.Link] = ()
        self._resource = tracer.resource
        self._instrumentation_scope = tracer.scope
        self._instrumentation_info = None
        self._status = _UNSET
        self._start_time = start_time or time.time_ns()
        self._end_time: int | None = None
        self._processor = tracer.processor

    def get_span_context(self) -> trace.SpanContext:
        return self._own_context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._end_time is None:
            self._attributes.update(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._end_time is None:
            self._attributes[key] = value

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
    ) -> None:
        if self._end_time is None:
            self._events.append(Event(name, attributes, timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return  # as the SDK: OK is final
        self._status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        described = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            **(attributes or {}),
        }
        self.add_event("exception", described, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time or time.time_ns()
        self._processor.on_end(self)


class LightTracer:
    """Starts `LightSpan`s with an SDK tracer's id generator, resource and processor."""

    def __init__(self, tracer: Tracer, always: bool) -> None:
        self._ids = tracer.id_generator
        self.resource = tracer.resource
        self.processor: SpanProcessor = tracer.span_processor
        info = tracer.instrumentation_info
        self.scope = InstrumentationScope(info.name, info.version, info.schema_url)
        self._always = always  # always_on: sampled whatever the parent says
        random = TraceFlags.RANDOM_TRACE_ID if self._ids.is_trace_id_random() else 0
        self._root_flags = TraceFlags(TraceFlags.SAMPLED | random)

    def start(
        self,
        name: str,
        parent: trace.SpanContext | None,
        kind: trace.SpanKind,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> LightSpan | None:
        """A new span; None when its parent was not sampled (and the sampler follows it)."""
        if parent is None or not parent.is_valid:
            return self.root(name, attributes, kind)
        if not (self._always or parent.trace_flags.sampled):
            return None
        flags = parent.trace_flags | TraceFlags.SAMPLED
        context = trace.SpanContext(
            parent.trace_id,
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=parent.trace_state,
        )
        return LightSpan(name, context, parent, kind, attributes, self)

    def root(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        kind: trace.SpanKind = trace.SpanKind.SERVER,
    ) -> LightSpan:
        """A new trace's first span (always sampled: roots are drawn before they start)."""
        context = trace.SpanContext(
            self._ids.generate_trace_id(),
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=self._root_flags,
        )
        return LightSpan(name, context, None, kind, attributes, self)


def light_tracer(
    tracer: trace.Tracer, sampler: sampling.Sampler | None, head_sampled: bool
) -> LightTracer | None:
    """A LightTracer for `tracer` if its spans' sampling can be decided here, else None;
    `head_sampled`: roots are drawn before (HeadSampledTracerProvider)."""
    if not isinstance(tracer, Tracer):
        return None
    if sampler is sampling.ALWAYS_ON:
        return LightTracer(tracer, always=True)
    if sampler is sampling.DEFAULT_ON or head_sampled:
        return LightTracer(tracer, always=False)
    return None

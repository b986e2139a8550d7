"""`InferencePipeline`: what happens to every inference request, whichever front it came by.

    InferencePipeline.serve(call)                          -> the status answered
      the model's name and version are well formed                           400
      inside one SERVER span, continuing the caller's trace context:
        the key: authenticated, its scope covers the model, its rate limit   401 403 429 503
        a slot of the worker's capacity within the key's share (capacity.py) 429, or
          shed when the worker is full                                       503 + Retry-After
        the request's body, as the front reads it                            400 408 413
        (a body that names its model: that model's scope now)                403
        the data plane: the result cache or Triton (dataplane.py), or for
        embeddings a cache entry per input (embeddings.py)                   400 404 503
        the front sends the answer
        a copy to the traffic split's shadow version, if any, after the answer
      a GatewayError is answered as the front answers errors; anything else is logged and
      answered 500; a client gone before its body arrived gets nothing (499)

A front (REST v2, gRPC, ...) is an `InferenceCall`: it says which model and version, hands
over the request's headers, reads the body, and sends answers and errors in its own
protocol. Everything else (capacity, access, the span, the data plane, shadowing, and the
request's `RequestInfo` for its access line and metrics) is done here, once.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from opentelemetry import trace
from opentelemetry.context import Context

from gateway.cache import Directive
from gateway.cache.policy import allows_stale
from gateway.control.catalog import ModelCatalog
from gateway.control.lifecycle.shadow import ShadowTraffic
from gateway.errors import BadRequest, ClientDisconnected, GatewayError, NotFound
from gateway.observability.metrics import Metrics
from gateway.observability.requests import RequestInfo
from gateway.observability.spans import Spans
from gateway.pipeline.access import Access, Grant
from gateway.pipeline.capacity import Capacity, Overloaded
from gateway.pipeline.dataplane import Answer, DataPlane, V2Request
from gateway.pipeline.embeddings import EmbeddingModel, EmbeddingsPlane, EmbeddingsRequest
from gateway.protocol.headers import Headers, header
from gateway.protocol.names import check_model_path

logger = logging.getLogger(__name__)
SpanAttributes = dict[str, str | int | bool]


class InferenceCall(Protocol):
    """One inference request as a front sees it."""

    model: str  # "" when the body names it (OpenAI's API): its scope is checked once read
    version: str  # "" when the request names none
    info: RequestInfo  # what the access line and the metrics say of the request
    span_name: str
    span_attributes: SpanAttributes

    @property
    def headers(self) -> Headers:
        """Lower-case names, as REST's; gRPC's metadata translated."""

    def caller_context(self) -> Context | None:
        """The caller's trace context (a `traceparent`), if any."""

    def status_attribute(self, status: int) -> tuple[str, int]:
        """The span attribute that reports `status` in this front's terms."""

    async def request(self) -> V2Request | EmbeddingsRequest:
        """The request's body, read and put in the pipeline's terms."""

    async def respond(self, answer: Answer, grant: Grant) -> None:
        """Send the answer (with the key's rate-limit values)."""

    async def fail(self, error: GatewayError) -> None:
        """Send the error."""


class InferencePipeline:
    """Serves inference calls from any front."""

    def __init__(
        self,
        capacity: Capacity,
        access: Access,
        dataplane: DataPlane,
        embeddings: EmbeddingsPlane,
        shadows: ShadowTraffic,
        catalog: ModelCatalog,
        metrics: Metrics,
        spans: Spans,
    ) -> None:
        self._capacity = capacity
        self._access = access
        self._dataplane = dataplane
        self._embeddings = embeddings
        self._shadows = shadows
        self._catalog = catalog
        self._metrics = metrics
        self._spans = spans

    async def serve(self, call: InferenceCall) -> int:
        """Answer `call`; return the status answered."""
        call.info.model = self._catalog.metric_label(call.model)
        try:
            check_model_path(call.model, call.version)
        except GatewayError as exc:
            await call.fail(exc)
            return exc.status
        return await self._traced(call)

    async def _traced(self, call: InferenceCall) -> int:
        spans = self._spans
        attributes = call.span_attributes
        started_ns = time.time_ns()
        status = 500
        with spans.start(
            call.span_name,
            attributes=attributes,
            kind=trace.SpanKind.SERVER,
            context=call.caller_context() if spans.enabled else None,
        ) as span:
            _note_trace(call.info, span)
            try:
                status = await self._answer(call)
            finally:
                span.set_attribute(*call.status_attribute(status))
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
        spans.keep_notable(span, call.span_name, started_ns, status, attributes)
        return status

    async def _answer(self, call: InferenceCall) -> int:
        """The call answered, or its error; the status either way."""
        try:
            await self._infer(call)
            return 200
        except ClientDisconnected:
            return 499  # nginx's "client closed request"; nothing is sent
        except Overloaded as exc:
            self._metrics.shed.inc()
            await call.fail(exc)
            return exc.status
        except GatewayError as exc:
            await call.fail(exc)
            return exc.status
        except Exception as exc:
            logger.exception("inference request failed unexpectedly")
            await call.fail(GatewayError(f"internal error: {type(exc).__name__}"))
            return 500

    async def _infer(self, call: InferenceCall) -> None:
        access = self._access
        if call.model:
            grant = await access.for_model(call.headers, call.model)
        else:
            grant = await access.for_anyone_with_a_key(call.headers)
        call.info.key_id = grant.key.id
        with self._capacity.hold(grant.key.id), self._metrics.in_flight.track_inprogress():
            try:
                request = await call.request()
            except BadRequest:  # an unreadable body (e.g. bad gzip) to an unknown model: 404
                if call.model:
                    await self._dataplane.check_known(call.model, call.version)
                raise
            cache_control = header(call.headers, b"cache-control")
            directive, stale = Directive.from_header(cache_control), allows_stale(cache_control)
            if isinstance(request, V2Request):
                answer = await self._dataplane.answer(
                    call.model,
                    call.version,
                    request.body,
                    request.header_length,
                    grant.key,
                    directive,
                    stale,
                )
            else:
                exposed = self._exposed(request.model, grant)
                call.info.model = self._catalog.metric_label(exposed.view.name)
                answer = await self._embeddings.answer(
                    request, exposed, grant.key, directive, stale
                )
            call.info.version, call.info.cache = answer.version, answer.outcome.value
            await call.respond(answer, grant)
        self._shadows.submit(answer.mirror)  # only now: it must not delay the answer

    def _exposed(self, name: str, grant: Grant) -> EmbeddingModel:
        """The embedding model `name`, if the key may use it (403 before 404, as for v2)."""
        try:
            exposed = self._embeddings.model(name)
        except NotFound:
            self._access.check_scope(grant.key, name)
            raise
        self._access.check_scope(grant.key, exposed.view.name)
        return exposed


def _note_trace(info: RequestInfo, span: trace.Span) -> None:
    context = span.get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        info.trace_id = context.trace_id.to_bytes(16, "big").hex()
        info.span_id = context.span_id.to_bytes(8, "big").hex()

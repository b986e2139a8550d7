"""`POST /v2/models/{model}[/versions/{version}]/infer`, served as plain ASGI.

This is the gateway's hot path, so it runs in front of the FastAPI app instead of inside
it: no routing table, no dependency injection, no Pydantic model of the request (on this
machine a fixed-body FastAPI route tops out at about a third of a raw ASGI app's rate).
Every other path falls through to the FastAPI app.

The request path, top to bottom, inside one SERVER span (continuing the caller's
`traceparent`, if any):
    authenticate the key, check its model scope and rate limit (401 / 403 / 429 / 503)
    -> read the body before its deadline (408), inflating gzip/deflate (413 over the
       limit, inflated)
    -> the data plane (gateway/dataplane.py): decode the v2 request, JSON or binary (400
       naming the input); answer from the result cache, else from Triton (its 400 / 404
       passed on; 503 + Retry-After when unreachable); encode the v2 response the way the
       client asked for it
    -> send it, with X-Cache (and Cache-Status on a stale answer) and the key's
       RateLimit-* headers (compressed if
       Accept-Encoding asks for gzip or deflate, as Triton does)
    -> then, if the model's split names a shadow version, a copy to it (lifecycle/shadow.py)
"""

from __future__ import annotations

import logging
import re
import time

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.access import Grant
from gateway.asgi import (
    ClientDisconnected,
    header,
    int_header,
    read_body,
    send_error,
    send_response,
)
from gateway.cache import Directive, Outcome
from gateway.cache.policy import allows_stale
from gateway.capacity import Overloaded
from gateway.compression import chosen_encoding, compress, inflate
from gateway.deadlines import BODY_ARRIVED, BodyDeadline
from gateway.errors import BadRequest, GatewayError, MethodNotAllowed
from gateway.observability.requests import RequestInfo, request_info
from gateway.protocol.names import check_model_path
from gateway.services import Services

logger = logging.getLogger(__name__)

STALE_CACHE_STATUS = b"gateway; hit; fwd=miss; fwd-status=503; detail=stale-if-error"
INFER_PATH = re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
ROUTE = "/v2/models/{model}/infer"
VERSIONED_ROUTE = "/v2/models/{model}/versions/{version}/infer"


class InferEndpoint:
    """ASGI middleware answering infer requests itself and passing everything else on.

    Overload (`gateway.capacity`): with GATEWAY_MAX_IN_FLIGHT requests already being served
    by this worker, a new one gets 503 with Retry-After at once (before its key or body is
    read), so an overload is shed instead of queueing without bound; a key that already has
    GATEWAY_MAX_IN_FLIGHT_PER_KEY requests here gets 429, so it cannot take them all.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = INFER_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        services: Services = scope["state"]["services"]
        model, version = match["model"], match["version"] or ""
        try:
            check_model_path(model, version)
        except BadRequest as exc:
            await send_error(send, exc)
            return
        info = request_info(scope)
        info.route = VERSIONED_ROUTE if version else ROUTE
        info.model = services.catalog.metric_label(model)
        try:
            with services.capacity.hold():
                services.metrics.in_flight.inc()
                try:
                    await self._traced(services, model, version, info, scope, receive, send)
                finally:
                    services.metrics.in_flight.dec()
        except Overloaded as exc:  # only from hold(): _traced answers every GatewayError
            services.metrics.shed.inc()
            await send_error(send, exc)

    async def _traced(
        self,
        services: Services,
        model: str,
        version: str,
        info: RequestInfo,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        spans = services.spans
        name = f"{scope['method']} {info.route}"
        attributes = {"http.request.method": scope["method"], "gateway.model": model}
        started_ns = time.time_ns()
        with spans.start(
            name,
            attributes=attributes,
            kind=trace.SpanKind.SERVER,
            context=_caller_context(scope) if spans.enabled else None,
        ) as span:
            _note_trace(info, span)
            status = await self._serve(services, model, version, info, scope, receive, send)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(trace.StatusCode.ERROR)
        spans.keep_notable(span, name, started_ns, status, attributes)

    async def _serve(
        self,
        services: Services,
        model: str,
        version: str,
        info: RequestInfo,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> int:
        """Answer the request; return the status sent."""
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"{scope['method']} is not allowed here; use POST")
            return await self._infer(services, model, version, info, scope, receive, send)
        except ClientDisconnected:
            return 499  # nginx's "client closed request"; nothing is sent
        except GatewayError as exc:
            await send_error(send, exc)
            return exc.status
        except Exception as exc:
            logger.exception("inference request failed unexpectedly")
            await send_error(send, GatewayError(f"internal error: {type(exc).__name__}"))
            return 500

    async def _infer(
        self,
        services: Services,
        model: str,
        version: str,
        info: RequestInfo,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> int:
        headers = scope["headers"]
        grant = await services.access.for_model(headers, model)
        info.key_id = grant.key.id
        with services.capacity.hold_for_key(grant.key.id):
            return await self._answer(services, model, version, info, grant, scope, receive, send)

    async def _answer(
        self,
        services: Services,
        model: str,
        version: str,
        info: RequestInfo,
        grant: Grant,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> int:
        headers = scope["headers"]
        settings = services.settings
        limit = settings.max_body_bytes
        deadline = BodyDeadline(settings.body_timeout_s, settings.body_min_rate)
        received = await read_body(receive, headers, limit, deadline, BODY_ARRIVED in scope)
        body = inflate(received, header(headers, b"content-encoding"), limit)
        header_length = int_header(headers, b"inference-header-content-length")
        cache_control = header(headers, b"cache-control")
        answer = await services.dataplane.answer(
            model,
            version,
            body,
            header_length,
            grant.key,
            Directive.from_header(cache_control),
            allows_stale(cache_control),
        )
        info.version, info.cache = answer.version, answer.outcome.value
        response = answer.response
        response_headers = [
            (b"content-type", response.content_type),
            (b"x-cache", answer.outcome.value.encode()),
            *grant.headers(),
        ]
        if answer.outcome is Outcome.STALE:  # RFC 9211: served from cache, Triton failed
            response_headers.append((b"cache-status", STALE_CACHE_STATUS))
        if response.header_length is not None:
            response_headers.append(
                (b"inference-header-content-length", str(response.header_length).encode())
            )
        payload = response.body
        encoding = chosen_encoding(header(headers, b"accept-encoding"))
        if encoding is not None:
            payload = compress(payload, encoding)
            response_headers.append((b"content-encoding", encoding.encode()))
        await send_response(send, 200, payload, response_headers)
        services.shadows.submit(answer.mirror)  # only now: it must not delay the answer
        return 200


def _caller_context(scope: Scope) -> Context | None:
    """The caller's trace context, if the request carries a `traceparent`."""
    headers = scope["headers"]
    parent = header(headers, b"traceparent")
    if parent is None:
        return None
    carrier = {"traceparent": parent.decode("latin-1")}
    state = header(headers, b"tracestate")
    if state is not None:
        carrier["tracestate"] = state.decode("latin-1")
    return propagate.extract(carrier)


def _note_trace(info: RequestInfo, span: trace.Span) -> None:
    context = span.get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        info.trace_id = context.trace_id.to_bytes(16, "big").hex()
        info.span_id = context.span_id.to_bytes(8, "big").hex()

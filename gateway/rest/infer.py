"""`POST /v2/models/{model}[/versions/{version}]/infer`: the REST front of the inference
pipeline (gateway/pipeline/inference.py), served as plain ASGI in front of the FastAPI app.

The hot path, so no routing table, dependency injection or Pydantic model of the request (a
fixed-body FastAPI route tops out at about a third of a raw ASGI app's rate). This adapter
only translates: the body is read before its deadline (408) and inflated (413 past the
limit, inflated); the answer goes out with X-Cache (Cache-Status on a stale answer), the
key's RateLimit-* headers, compressed when Accept-Encoding asks, as Triton does. Every other
path falls through to the FastAPI app.
"""

from __future__ import annotations

import re

from opentelemetry import propagate
from opentelemetry.context import Context
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.cache import Outcome
from gateway.errors import GatewayError, MethodNotAllowed
from gateway.observability.requests import request_info
from gateway.pipeline.access import Grant
from gateway.pipeline.dataplane import Answer, V2Request
from gateway.pipeline.inference import SpanAttributes
from gateway.protocol.headers import header
from gateway.rest.asgi import int_header, read_inflated, send_error, send_response
from gateway.rest.compression import chosen_encoding, compress
from gateway.services import Services

STALE_CACHE_STATUS = b"gateway; hit; fwd=miss; fwd-status=503; detail=stale-if-error"
INFER_PATH = re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
ROUTE = "/v2/models/{model}/infer"
VERSIONED_ROUTE = "/v2/models/{model}/versions/{version}/infer"


class InferEndpoint:
    """ASGI middleware answering infer requests itself and passing everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = INFER_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        services: Services = scope["state"]["services"]
        call = RestCall(scope, receive, send, match["model"], match["version"] or "", services)
        if scope["method"] == "POST":
            await services.pipeline.serve(call)
            return
        call.info.model = services.catalog.metric_label(call.model)
        await call.fail(MethodNotAllowed(f"{scope['method']} is not allowed here; use POST"))


class RestCall:
    """An inference request over HTTP (an `InferenceCall`)."""

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, model: str, version: str, s: Services
    ) -> None:
        self.model, self.version = model, version
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.info = request_info(scope)
        self.info.route = VERSIONED_ROUTE if version else ROUTE
        self.span_name = f"POST {self.info.route}"
        self.span_attributes: SpanAttributes = {
            "http.request.method": "POST",
            "gateway.model": model,
        }
        self._scope, self._receive, self._send, self._settings = scope, receive, send, s.settings

    def caller_context(self) -> Context | None:
        parent = header(self.headers, b"traceparent")
        if parent is None:
            return None
        carrier = {"traceparent": parent.decode("latin-1")}
        state = header(self.headers, b"tracestate")
        if state is not None:
            carrier["tracestate"] = state.decode("latin-1")
        return propagate.extract(carrier)

    def status_attribute(self, status: int) -> tuple[str, int]:
        return "http.response.status_code", status

    async def request(self) -> V2Request:
        body = await read_inflated(self._scope, self._receive, self._settings)
        return V2Request(body, int_header(self.headers, b"inference-header-content-length"))

    async def respond(self, answer: Answer, grant: Grant) -> None:
        response = answer.response
        headers = [
            (b"content-type", response.content_type),
            (b"x-cache", answer.outcome.value.encode()),
            *grant.headers(),
        ]
        if answer.outcome is Outcome.STALE:  # RFC 9211: served from cache, Triton failed
            headers.append((b"cache-status", STALE_CACHE_STATUS))
        if response.header_length is not None:
            length = str(response.header_length).encode()
            headers.append((b"inference-header-content-length", length))
        payload = response.body
        encoding = chosen_encoding(header(self.headers, b"accept-encoding"))
        if encoding is not None:
            payload = compress(payload, encoding)
            headers.append((b"content-encoding", encoding.encode()))
        await send_response(self._send, 200, payload, headers)

    async def fail(self, error: GatewayError) -> None:
        await send_error(self._send, error)

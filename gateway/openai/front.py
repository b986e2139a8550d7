"""`OpenAIFront`: OpenAI's embeddings API on the gateway's keys, limits, cache and Triton.

    POST /v1/embeddings       the inference pipeline (an `EmbeddingsCall`), answered as
                              OpenAI answers, with X-Cache (hit: every input was cached)
                              and X-Cache-Inputs (`cached/total`)
    GET  /v1/models           the embedding models the key's scopes cover
    GET  /v1/models/{id}      one of them (404 otherwise)

Keys come as `Authorization: Bearer <key>`, as OpenAI's SDKs send them. Every error is in
OpenAI's error shape (errors.py). Plain ASGI in front of the FastAPI app, as the v2
inference endpoint; every other path falls through.
"""

from __future__ import annotations

import re

import orjson
from opentelemetry import propagate
from opentelemetry.context import Context
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import GatewayError, MethodNotAllowed, NotFound
from gateway.observability.requests import request_info
from gateway.openai.errors import openai_error_body
from gateway.openai.parse import embeddings_request
from gateway.pipeline.access import Grant
from gateway.pipeline.dataplane import Answer
from gateway.pipeline.embeddings import EmbeddingsRequest
from gateway.pipeline.inference import SpanAttributes
from gateway.protocol.headers import header
from gateway.rest.asgi import read_inflated, send_response
from gateway.services import Services

EMBEDDINGS = "/v1/embeddings"
MODELS = re.compile(r"^/v1/models(?:/(?P<id>[^/]+))?$")
JSON = (b"content-type", b"application/json")


class OpenAIFront:
    """ASGI middleware answering OpenAI's paths itself and passing everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        services: Services = scope["state"]["services"]
        if path == EMBEDDINGS:
            call = EmbeddingsCall(scope, receive, send, services)
            if scope["method"] == "POST":
                await services.pipeline.serve(call)
            else:
                await call.fail(MethodNotAllowed(f"{scope['method']} is not allowed; use POST"))
            return
        models = MODELS.match(path)
        if models is None:
            await self.app(scope, receive, send)
            return
        request_info(scope).route = "/v1/models/{id}" if models["id"] else "/v1/models"
        try:
            if scope["method"] != "GET":
                raise MethodNotAllowed(f"{scope['method']} is not allowed here; use GET")
            document = await _models(services, scope["headers"], models["id"])
        except GatewayError as exc:
            await send_openai_error(send, exc)
            return
        await send_response(send, 200, orjson.dumps(document), [JSON])


async def _models(
    services: Services, headers: list[tuple[bytes, bytes]], model_id: str | None
) -> object:
    grant = await services.access.for_anyone_with_a_key(headers)
    listed = [
        {"id": m.name, "object": "model", "created": 0, "owned_by": "gateway"}
        for m in services.embeddings.models()
        if grant.key.allows_model(m.view.name)
    ]
    if model_id is None:
        return {"object": "list", "data": listed}
    for model in listed:
        if model["id"] == model_id:
            return model
    raise NotFound(f"The model '{model_id}' does not exist or is not served for embeddings")


class EmbeddingsCall:
    """A `POST /v1/embeddings` (an `InferenceCall` whose body names its model)."""

    model = ""
    version = ""
    span_name = f"POST {EMBEDDINGS}"

    def __init__(self, scope: Scope, receive: Receive, send: Send, services: Services) -> None:
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.info = request_info(scope)
        self.info.route = EMBEDDINGS
        self.span_attributes: SpanAttributes = {"http.request.method": "POST"}
        self._scope, self._receive, self._send = scope, receive, send
        self._settings = services.settings

    def caller_context(self) -> Context | None:
        parent = header(self.headers, b"traceparent")
        return None if parent is None else propagate.extract({"traceparent": parent.decode()})

    def status_attribute(self, status: int) -> tuple[str, int]:
        return "http.response.status_code", status

    async def request(self) -> EmbeddingsRequest:
        body = await read_inflated(self._scope, self._receive, self._settings)
        return embeddings_request(body, self._settings.openai_max_inputs)

    async def respond(self, answer: Answer, grant: Grant) -> None:
        headers = [JSON, (b"x-cache", answer.outcome.value.encode()), *grant.headers()]
        if answer.cached_parts is not None:
            cached, total = answer.cached_parts
            headers.append((b"x-cache-inputs", f"{cached}/{total}".encode()))
        await send_response(self._send, 200, answer.response.body, headers)

    async def fail(self, error: GatewayError) -> None:
        await send_openai_error(self._send, error)


async def send_openai_error(send: Send, error: GatewayError) -> None:
    headers = [JSON, *((k.lower().encode(), v.encode()) for k, v in error.headers().items())]
    await send_response(send, error.status, openai_error_body(error), headers)

"""`ModelInfer`: the gRPC front of the inference pipeline (gateway/pipeline/inference.py).

The key comes from `authorization: Bearer ...` or `x-api-key` metadata, the caller's trace
from its `traceparent` metadata. The request goes to the pipeline as REST's binary body
(`convert.py`), so cache, single flight, traffic splits and Triton are REST's own; the
answer carries `x-cache` and the RateLimit values in trailing metadata. An error is sent
with REST's message and the status code Triton's gRPC front uses (`status.py`).
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeAlias

import grpc
from opentelemetry import propagate
from opentelemetry.context import Context

from gateway.errors import GatewayError
from gateway.grpc_api.convert import infer_body, infer_response
from gateway.grpc_api.status import CODES, grpc_code, trailers
from gateway.observability.requests import RequestInfo
from gateway.pipeline.access import Grant
from gateway.pipeline.dataplane import Answer, V2Request
from gateway.pipeline.inference import SpanAttributes

ServicerContext: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Headers = list[tuple[bytes, bytes]]


class GrpcCall:
    """A `ModelInferRequest` (an `InferenceCall`); `outcome()` ends the RPC once served."""

    span_name = "ModelInfer"

    def __init__(self, request: Any, context: ServicerContext) -> None:
        self.model, self.version = request.model_name, request.model_version
        self.headers = metadata_headers(context)
        self.info = RequestInfo(route="ModelInfer")
        self.span_attributes: SpanAttributes = {
            "rpc.system": "grpc",
            "rpc.method": "ModelInfer",
            "gateway.model": self.model,
        }
        self._request, self._context = request, context
        self._response: Any = None
        self._error: GatewayError | None = None

    def caller_context(self) -> Context:
        return propagate.extract(dict(self._context.invocation_metadata() or ()))

    def status_attribute(self, status: int) -> tuple[str, int]:
        return "rpc.grpc.status_code", code_of(status).value[0]

    async def request(self) -> V2Request:
        return V2Request(*infer_body(self._request))

    async def respond(self, answer: Answer, grant: Grant) -> None:
        self._response = infer_response(answer.response)
        rate_limit = [(name.decode(), value.decode()) for name, value in grant.headers()]
        self._context.set_trailing_metadata([("x-cache", answer.outcome.value), *rate_limit])

    async def fail(self, error: GatewayError) -> None:
        self._error = error

    async def outcome(self) -> Any:
        """The response, or the RPC aborted with the error."""
        if self._error is not None:
            await abort(self._context, self._error)
        return self._response


async def abort(context: ServicerContext, error: GatewayError) -> NoReturn:
    context.set_trailing_metadata(trailers(error))
    await context.abort(grpc_code(error), error.message)


def metadata_headers(context: ServicerContext) -> Headers:
    """The call's metadata as the lower-case header pairs the pipeline reads."""
    pairs: Headers = []
    for key, value in context.invocation_metadata() or ():
        if not key.endswith("-bin") and isinstance(value, str):
            pairs.append((key.lower().encode("latin-1"), value.encode("latin-1")))
    return pairs


def code_of(status: int) -> grpc.StatusCode:
    if status < 400:
        return grpc.StatusCode.OK
    return CODES.get(status, grpc.StatusCode.INTERNAL)

"""`InferenceService`: the KServe v2 gRPC service (`inference.GRPCInferenceService`), on the
same request path as REST.

    ModelInfer   inside one SERVER span (continuing the caller's `traceparent` metadata):
                 the worker's capacity (UNAVAILABLE when full), the key from `authorization:
                 Bearer ...` or `x-api-key` metadata, its scope and rate limit, the key's
                 share of capacity; then the data plane with the request as REST's binary
                 body (`convert`), so cache, single flight, traffic splits and Triton are
                 REST's own; `x-cache` and the RateLimit values in trailing metadata
    ServerLive, ServerReady                      as /v2/health/live and /ready (no key)
    ServerMetadata                               any valid key
    ModelReady, ModelMetadata, ModelConfig,      a key whose scopes cover the model
    ModelStatistics                              (of all models: the admin scope)

Errors carry REST's message and the status code Triton's gRPC front uses (`status`).
Not served: the repository, shared-memory, trace and log calls (as on REST), and
ModelStreamInfer (UNIMPLEMENTED): it exists for decoupled models, which this repository
has none of, and a stream's answers cannot be cached or retried per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeAlias, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from gateway import __version__
from gateway.access import Grant
from gateway.asgi import header
from gateway.cache import Directive
from gateway.cache.policy import allows_stale
from gateway.capacity import Overloaded
from gateway.draining import Drain
from gateway.errors import GatewayError
from gateway.grpc_api.convert import from_json, infer_body, infer_response
from gateway.grpc_api.status import CODES, grpc_code, trailers
from gateway.observability.access_log import AccessLog
from gateway.protocol.names import check_model_path
from gateway.routes.health import EXPOSED_EXTENSIONS
from gateway.services import Services

logger = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
T = TypeVar("T")


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The v2 gRPC calls, answered through the gateway's services."""

    def __init__(self, services: Services, drain: Drain, access_log: AccessLog | None) -> None:
        self._services = services
        self._drain = drain
        self._access_log = access_log

    async def ServerLive(self, request: Any, context: Context) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Context) -> Any:
        services = self._services
        ready = (
            services.triton_health.ready and not services.capacity.full and not self._drain.draining
        )
        return service_pb2.ServerReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            await self._services.access.for_anyone_with_a_key(headers)
            offered = set((await self._services.triton.server_metadata()).get("extensions", []))
            return service_pb2.ServerMetadataResponse(
                name="gateway",
                version=__version__,
                extensions=[e for e in EXPOSED_EXTENSIONS if e in offered],
            )

        return await self._unary(context, "ServerMetadata", answer)

    async def ModelReady(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            await self._for_model(headers, request.name, request.version)
            ready = await self._services.triton.is_model_ready(request.name, request.version)
            return service_pb2.ModelReadyResponse(ready=ready)

        return await self._unary(context, "ModelReady", answer)

    async def ModelMetadata(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            await self._for_model(headers, request.name, request.version)
            document = await self._services.triton.model_metadata(request.name, request.version)
            return from_json(document, service_pb2.ModelMetadataResponse())

        return await self._unary(context, "ModelMetadata", answer)

    async def ModelConfig(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            await self._for_model(headers, request.name, request.version)
            document = await self._services.triton.model_config(request.name, request.version)
            config = from_json(document, model_config_pb2.ModelConfig())
            return service_pb2.ModelConfigResponse(config=config)

        return await self._unary(context, "ModelConfig", answer)

    async def ModelStatistics(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            if request.name:
                await self._for_model(headers, request.name, request.version)
            else:  # every model's: only the admin scope may learn their names
                await self._services.access.for_admin(headers)
            stats = await self._services.triton.model_statistics(request.name, request.version)
            if request.name:
                stats = [s for s in stats if s.get("name") == request.name]
            return from_json({"model_stats": stats}, service_pb2.ModelStatisticsResponse())

        return await self._unary(context, "ModelStatistics", answer)

    async def ModelInfer(self, request: Any, context: Context) -> Any:
        services = self._services
        model, version = request.model_name, request.model_version
        started = time.perf_counter()
        fields: dict[str, object] = {"model": services.catalog.metric_label(model)}
        status = 500
        attributes = {"rpc.system": "grpc", "rpc.method": "ModelInfer", "gateway.model": model}
        started_ns = time.time_ns()
        with services.spans.start(
            "ModelInfer",
            attributes=attributes,
            kind=trace.SpanKind.SERVER,
            context=_caller_context(context) if services.spans.enabled else None,
        ) as span:
            try:
                check_model_path(model, version)
                with services.capacity.hold():
                    services.metrics.in_flight.inc()
                    try:
                        response = await self._infer(request, context, fields)
                    finally:
                        services.metrics.in_flight.dec()
                status = 200
                return response
            except Overloaded as exc:
                services.metrics.shed.inc()
                status = exc.status
                await self._abort(context, exc)
            except GatewayError as exc:
                status = exc.status
                await self._abort(context, exc)
            except Exception as exc:
                logger.exception("gRPC inference request failed unexpectedly")
                await self._abort(context, GatewayError(f"internal error: {type(exc).__name__}"))
            finally:
                span.set_attribute("rpc.grpc.status_code", _code_of(status).value[0])
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
                services.spans.keep_notable(span, "ModelInfer", started_ns, status, attributes)
                self._record("ModelInfer", context, status, started, fields)

    async def ModelStreamInfer(self, request_iterator: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "ModelStreamInfer is not offered by the gateway (no decoupled models); use ModelInfer",
        )

    async def _infer(self, request: Any, context: Context, fields: dict[str, object]) -> Any:
        services = self._services
        headers = _headers(context)
        grant = await services.access.for_model(headers, request.model_name)
        fields["key_id"] = grant.key.id
        with services.capacity.hold_for_key(grant.key.id):
            body, header_length = infer_body(request)
            cache_control = header(headers, b"cache-control")
            answer = await services.dataplane.answer(
                request.model_name,
                request.model_version,
                body,
                header_length,
                grant.key,
                Directive.from_header(cache_control),
                allows_stale(cache_control),
            )
        fields["version"], fields["cache"] = answer.version, answer.outcome.value
        context.set_trailing_metadata(
            [("x-cache", answer.outcome.value), *_rate_limit_metadata(grant)]
        )
        # A task of its own: it runs while grpc sends this response, never before it.
        services.shadows.submit(answer.mirror)
        return infer_response(answer.response)

    async def _for_model(self, headers: Headers, model: str, version: str) -> Grant:
        check_model_path(model, version)
        return await self._services.access.for_model(headers, model)

    async def _unary(
        self,
        context: Context,
        method: str,
        answer: Callable[[Headers], Awaitable[T]],
    ) -> T:
        """Answer a call; a gateway error becomes its gRPC status."""
        started = time.perf_counter()
        status = 500
        try:
            result = await answer(_headers(context))
            status = 200
            return result
        except GatewayError as exc:
            status = exc.status
            await self._abort(context, exc)
        finally:
            self._record(method, context, status, started, {})

    async def _abort(self, context: Context, error: GatewayError) -> NoReturn:
        context.set_trailing_metadata(trailers(error))
        await context.abort(grpc_code(error), error.message)

    def _record(
        self,
        method: str,
        context: Context,
        status: int,
        started: float,
        fields: dict[str, object],
    ) -> None:
        elapsed = time.perf_counter() - started
        metrics = self._services.metrics
        code = _code_of(status)
        metrics.grpc_requests.labels(method, code.name).inc()
        model = fields.get("model")
        if model is not None:
            version, cache = str(fields.get("version", "")), str(fields.get("cache", "none"))
            metrics.inference_requests.labels(str(model), version, str(status), cache, "grpc").inc()
            metrics.inference_duration.labels(str(model), version, cache).observe(elapsed)
        if self._access_log is not None:
            self._access_log.write(
                {
                    "event": "access",
                    "protocol": "grpc",
                    "method": "POST",
                    "path": f"/inference.GRPCInferenceService/{method}",
                    "route": method,
                    "status": status,
                    "grpc_code": code.name,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": context.peer(),
                    **fields,
                }
            )


def _headers(context: Context) -> Headers:
    """The call's metadata as the lower-case header pairs the REST path reads."""
    pairs: Headers = []
    for key, value in context.invocation_metadata() or ():
        if not key.endswith("-bin") and isinstance(value, str):
            pairs.append((key.lower().encode("latin-1"), value.encode("latin-1")))
    return pairs


def _caller_context(context: Context) -> otel_context.Context:
    """The trace the caller's `traceparent` metadata continues."""
    return propagate.extract({key: value for key, value in context.invocation_metadata() or ()})


def _rate_limit_metadata(grant: Grant) -> list[tuple[str, str]]:
    return [(name.decode(), value.decode()) for name, value in grant.headers()]


def _code_of(status: int) -> grpc.StatusCode:
    if status < 400:
        return grpc.StatusCode.OK
    return CODES.get(status, grpc.StatusCode.INTERNAL)

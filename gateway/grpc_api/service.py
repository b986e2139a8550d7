"""`InferenceService`: the KServe v2 gRPC service (`inference.GRPCInferenceService`), on the
same request path as REST.

    ModelInfer                                   the inference pipeline (`infer.py`)
    ServerLive, ServerReady                      as /v2/health/live and /ready (no key)
    ServerMetadata                               any valid key; Triton's, as on REST
    ModelReady, ModelMetadata, ModelConfig,      a key whose scopes cover the model
    ModelStatistics                              (of all models: the admin scope)

Keys come from `authorization: Bearer ...` or `x-api-key` metadata. Errors carry REST's
message and the status code Triton's gRPC front uses (`status`).
Not served: the repository, shared-memory, trace and log calls (as on REST), and
ModelStreamInfer (UNIMPLEMENTED): it exists for decoupled models, which this repository
has none of, and a stream's answers cannot be cached or retried per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from gateway.errors import GatewayError
from gateway.grpc_api.convert import from_json
from gateway.grpc_api.infer import (
    GrpcCall,
    Headers,
    abort,
    code_of,
    metadata_headers,
)
from gateway.grpc_api.infer import (
    ServicerContext as Context,
)
from gateway.observability.access_log import AccessLog
from gateway.observability.requests import CLIENT_ADDRESS, RequestInfo
from gateway.pipeline.access import Grant
from gateway.protocol.names import check_model_path
from gateway.rest.routes.health import GATEWAY, served_metadata
from gateway.runtime.draining import Drain
from gateway.services import Services

logger = logging.getLogger(__name__)

T = TypeVar("T")


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The v2 gRPC calls, answered through the gateway's services."""

    def __init__(self, services: Services, drain: Drain, access_log: AccessLog | None) -> None:
        self._services = services
        self._control = services.triton.control
        self._drain = drain
        self._access_log = access_log

    async def ServerLive(self, request: Any, context: Context) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Context) -> Any:
        reason = self._services.unready_reason(self._drain.draining)
        return service_pb2.ServerReadyResponse(ready=reason is None)

    async def ServerMetadata(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            await self._services.access.for_anyone_with_a_key(headers)
            served = served_metadata(await self._control.server_metadata())
            context.set_trailing_metadata([("x-gateway", GATEWAY)])
            return from_json(served, service_pb2.ServerMetadataResponse())

        return await self._unary(context, "ServerMetadata", answer)

    async def ModelReady(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            await self._for_model(headers, request.name, request.version)
            ready = await self._control.is_model_ready(request.name, request.version)
            return service_pb2.ModelReadyResponse(ready=ready)

        return await self._unary(context, "ModelReady", answer)

    async def ModelMetadata(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            await self._for_model(headers, request.name, request.version)
            document = await self._control.model_metadata(request.name, request.version)
            return from_json(document, service_pb2.ModelMetadataResponse())

        return await self._unary(context, "ModelMetadata", answer)

    async def ModelConfig(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            await self._for_model(headers, request.name, request.version)
            document = await self._control.model_config(request.name, request.version)
            config = from_json(document, model_config_pb2.ModelConfig())
            return service_pb2.ModelConfigResponse(config=config)

        return await self._unary(context, "ModelConfig", answer)

    async def ModelStatistics(self, request: Any, context: Context) -> Any:
        async def answer(headers: Headers) -> Any:
            if request.name:
                await self._for_model(headers, request.name, request.version)
            else:  # every model's: only the admin scope may learn their names
                await self._services.access.for_admin(headers)
            stats = await self._control.model_statistics(request.name, request.version)
            if request.name:
                stats = [s for s in stats if s.get("name") == request.name]
            return from_json({"model_stats": stats}, service_pb2.ModelStatisticsResponse())

        return await self._unary(context, "ModelStatistics", answer)

    async def ModelInfer(self, request: Any, context: Context) -> Any:
        CLIENT_ADDRESS.set(peer_address(context))
        call = GrpcCall(request, context)
        started = time.perf_counter()
        status = 500
        try:
            status = await self._services.pipeline.serve(call)
        finally:
            self._record("ModelInfer", context, status, started, call.info)
        return await call.outcome()

    async def ModelStreamInfer(self, request_iterator: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "ModelStreamInfer is not offered by the gateway (no decoupled models); use ModelInfer",
        )

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
        CLIENT_ADDRESS.set(peer_address(context))
        started = time.perf_counter()
        status = 500
        try:
            result = await answer(metadata_headers(context))
            status = 200
            return result
        except GatewayError as exc:
            status = exc.status
            await abort(context, exc)
        finally:
            self._record(method, context, status, started, RequestInfo(route=method))

    def _record(
        self,
        method: str,
        context: Context,
        status: int,
        started: float,
        info: RequestInfo,
    ) -> None:
        elapsed = time.perf_counter() - started
        metrics = self._services.metrics
        code = code_of(status)
        metrics.grpc_requests.labels(method, code.name).inc()
        if info.model is not None:
            version, cache = info.version or "", info.cache or "none"
            metrics.inference_requests.labels(info.model, version, str(status), cache, "grpc").inc()
            metrics.inference_duration.labels(info.model, version, cache).observe(elapsed)
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
                    **info.fields(),
                }
            )


def peer_address(context: Context) -> str | None:
    """The client's address from gRPC's peer ("ipv4:10.0.0.1:5555", "ipv6:[::1]:5555")."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or not rest:
        return None
    return rest.rsplit(":", 1)[0].strip("[]")

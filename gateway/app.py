"""The ASGI application.

    RequestObserver             access line and request metrics, for every request
      ClosingConnections        after SIGTERM, while draining: Connection: close
        InferEndpoint           POST .../infer, plain ASGI (the hot path)
          OpenAIFront           /v1/embeddings, /v1/models (OpenAI's API), plain ASGI
            FastAPI             everything else (health, metadata, admin, /metrics),
                                traced by OpenTelemetry's FastAPI instrumentation

    create_app(settings)    -> the app, for uvicorn or a test client
    app_from_environment()  -> the same, settings read from GATEWAY_* (uvicorn factory)

Tracing is configured from the standard OTEL_* variables unless a tracer provider is given
(tests pass one with an in-memory exporter).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, BinaryIO

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import ASGIApp

from gateway import __version__
from gateway.grpc_api.server import start_grpc_server
from gateway.observability.access_log import AccessLog
from gateway.observability.logs import configure_logging
from gateway.observability.metrics import Metrics
from gateway.observability.requests import RequestObserver, request_info
from gateway.observability.tracing import tracer_provider_from_environment
from gateway.openai.front import OpenAIFront
from gateway.rest.error_handlers import install_error_handlers
from gateway.rest.infer import InferEndpoint
from gateway.rest.routes import (
    admin_backends,
    admin_cache,
    admin_keys,
    admin_models,
    health,
    metrics,
    models,
)
from gateway.runtime.draining import ClosingConnections, Drain
from gateway.runtime.gc_tuning import tune_for_serving
from gateway.services import open_services
from gateway.settings import Settings

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    tracer_provider: TracerProvider | None = None,
    access_stream: BinaryIO | None = None,
) -> ASGIApp:
    app_metrics = Metrics(exemplar_interval_s=settings.exemplar_interval_s)
    provider = tracer_provider or tracer_provider_from_environment(app_metrics)
    drain = Drain(settings.drain_delay_s)
    access_log = (
        AccessLog(access_stream, settings.access_log_flush_s) if settings.access_log else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        try:
            async with AsyncExitStack() as stack:
                services = await stack.enter_async_context(
                    open_services(settings, app_metrics, provider)
                )
                drain.install()  # SIGTERM: drain, then uvicorn's stop
                if settings.grpc_port:
                    grpc_server = await start_grpc_server(
                        services, drain, access_log, settings.grpc_host, settings.grpc_port
                    )
                    stack.push_async_callback(grpc_server.stop, settings.shutdown_grace_s)
                tune_for_serving()  # the start-up heap is built: stop re-scanning it
                try:
                    # Lifespan state: copied into every request's scope["state"].
                    yield {"services": services, "drain": drain}
                finally:
                    await _close_within(stack, settings.shutdown_grace_s)
        finally:
            if access_log is not None:
                access_log.flush()
            if provider is not None and tracer_provider is None:
                provider.shutdown()  # flush what is queued (bounded by the export timeout)

    docs = settings.serves_docs
    api = FastAPI(
        title="gateway",
        version=__version__,
        summary="KServe v2 inference gateway in front of Triton",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    api.include_router(health.router)
    api.include_router(models.router)
    api.include_router(admin_keys.router)
    api.include_router(admin_cache.router)
    api.include_router(admin_models.router)
    api.include_router(admin_backends.router)
    api.include_router(metrics.router)
    install_error_handlers(api)
    if provider is not None:
        FastAPIInstrumentor.instrument_app(
            api,
            tracer_provider=provider,
            server_request_hook=_note_trace_ids,
            exclude_spans=["receive", "send"],
        )
    fronts = InferEndpoint(OpenAIFront(api))  # v2 inference first: the hot path
    return RequestObserver(ClosingConnections(fronts, drain), access_log)


async def _close_within(stack: AsyncExitStack, timeout_s: float) -> None:
    """Close the app's clients, giving up (loudly) after `timeout_s`: a stop must end."""
    try:
        async with asyncio.timeout(timeout_s):
            await stack.aclose()
    except TimeoutError:
        logger.error("closing the gateway's clients took over %.0f s; abandoned", timeout_s)


def _note_trace_ids(span: trace.Span, scope: dict[str, Any]) -> None:
    context = span.get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        info = request_info(scope)
        info.trace_id = format(context.trace_id, "032x")
        info.span_id = format(context.span_id, "016x")


def app_from_environment() -> ASGIApp:
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)

"""`/metrics` in the Prometheus text format, or OpenMetrics (with exemplars) on request;
with GATEWAY_METRICS_TOKEN, only for a scrape that presents that token."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics import exposition as openmetrics

from gateway.errors import Unauthorized
from gateway.observability.metrics import multiprocess_mode
from gateway.rest.deps import ServicesDep
from gateway.runtime.stack_state import BackendRestarts

router = APIRouter(tags=["metrics"])


@router.get("/metrics")
async def metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    if token is not None:
        presented = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(presented, f"Bearer {token.get_secret_value()}".encode()):
            raise Unauthorized("/metrics needs the scrape token (GATEWAY_METRICS_TOKEN) as Bearer")
    if multiprocess_mode():  # every worker's values, whichever worker answers
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(BackendRestarts(services.settings.state_dir))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    registry = services.metrics.registry
    if "application/openmetrics-text" in request.headers.get("accept", ""):
        return Response(
            openmetrics.generate_latest(registry),  # type: ignore[no-untyped-call]
            media_type=openmetrics.CONTENT_TYPE_LATEST,
        )
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

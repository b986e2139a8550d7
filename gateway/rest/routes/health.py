"""Liveness and readiness (`/v2/health/*`, open to everyone) and server metadata (`/v2`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway import __version__
from gateway.errors import ServiceUnavailable
from gateway.rest.deps import AnyGrant, ServicesDep, json_response

router = APIRouter(tags=["health"])
GATEWAY = f"gateway/{__version__}"  # X-Gateway: which gateway answered in Triton's name

# Protocol extensions the gateway passes through. Triton's repository, shared-memory,
# statistics, trace and logging extensions are deliberately not exposed.
EXPOSED_EXTENSIONS = (
    "classification",
    "sequence",
    "model_configuration",
    "schedule_policy",
    "binary_tensor_data",
    "parameters",
)


@router.get("/v2/health/live")
async def live() -> Response:
    """200 while the gateway process serves requests."""
    return Response(status_code=200)


@router.get("/v2/health/ready")
async def ready(request: Request, services: ServicesDep) -> Response:
    """200 while this worker can answer from its cache or from Triton; 503 with the reason
    otherwise, and as soon as SIGTERM starts a drain (`Services.unready_reason`)."""
    reason = services.unready_reason(request.state.drain.draining)
    if reason is not None:
        raise ServiceUnavailable(reason, services.settings.retry_after_s)
    return Response(status_code=200)


@router.get("/health/triton")
async def triton_ready(services: ServicesDep) -> Response:
    """Triton's state as the background probe last saw it (answers at once): 200 while at
    least one Triton is ready, else 503; how many are, of how many, in both."""
    health = services.triton_health
    counts = {"ready_endpoints": health.ready_count, "endpoints": len(services.triton.endpoints)}
    if health.ready:
        return json_response(counts)
    return json_response({"error": "no Triton is ready", **counts}, status_code=503)


@router.get("/v2")
async def server_metadata(services: ServicesDep, _: AnyGrant) -> Response:
    """Server metadata as the Triton behind the gateway gives it (stock clients check its
    name), with only the extensions the gateway passes through; the gateway's own name and
    version in the `X-Gateway` header. Needs any valid key."""
    triton = await services.triton.control.server_metadata()
    response = json_response(served_metadata(triton))
    response.headers["X-Gateway"] = GATEWAY
    return response


def served_metadata(triton: dict[str, object]) -> dict[str, object]:
    """Triton's server metadata with the extensions the gateway passes through."""
    offered = triton.get("extensions")
    extensions = set(offered) if isinstance(offered, list) else set()
    return {
        "name": triton.get("name", "triton"),
        "version": triton.get("version", ""),
        "extensions": [e for e in EXPOSED_EXTENSIONS if e in extensions],
    }

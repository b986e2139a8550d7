"""`GET /admin/backends` (admin scope): how this gateway worker sees each Triton (probe,
breaker, ejection, calls in flight, queue), and what `gateway up`'s supervisor says of the
backends it runs (state, restarts, last reason)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway.rest.deps import AdminGrant, ServicesDep, json_response
from gateway.runtime.stack_state import embedded_backends

router = APIRouter(prefix="/admin/backends", tags=["admin"])


@router.get("")
async def backends(services: ServicesDep, _: AdminGrant) -> Response:
    return json_response(
        {
            "triton": {
                "ready": services.triton_health.ready,
                "circuit": "open" if services.triton.circuit_open else "closed",
                "endpoints": services.triton.describe_endpoints(),
            },
            "embedded": embedded_backends(services.settings.state_dir),
        }
    )

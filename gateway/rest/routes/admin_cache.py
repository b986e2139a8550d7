"""`/admin/cache`: purge cached results (admin scope).

    DELETE /admin/cache                                   everything
    DELETE /admin/cache/models/{model}                    one model, every version
    DELETE /admin/cache/models/{model}/versions/{version} one model version

Entries are deleted from Redis at once and dropped from every gateway process's
in-process tier through Redis pub/sub. Purging is never needed for correctness (a new
version or a changed artifact gets new keys); it frees memory or forces fresh answers.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway.errors import ServiceUnavailable
from gateway.rest.deps import AdminGrant, ServicesDep, json_response
from resilience import StoreUnavailable

router = APIRouter(prefix="/admin/cache", tags=["admin"])


@router.delete("")
async def purge_all(services: ServicesDep, _: AdminGrant) -> Response:
    return await _purge(services, None, None)


@router.delete("/models/{model}")
async def purge_model(model: str, services: ServicesDep, _: AdminGrant) -> Response:
    return await _purge(services, model, None)


@router.delete("/models/{model}/versions/{version}")
async def purge_version(model: str, version: str, services: ServicesDep, _: AdminGrant) -> Response:
    return await _purge(services, model, version)


async def _purge(services: ServicesDep, model: str | None, version: str | None) -> Response:
    try:
        deleted = await services.cache.purge(model, version)
    except StoreUnavailable as exc:
        raise ServiceUnavailable(
            "Redis is unavailable; nothing was purged", services.settings.retry_after_s
        ) from exc
    return json_response({"deleted": deleted, "model": model, "version": version})

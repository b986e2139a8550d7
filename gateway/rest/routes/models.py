"""Model metadata, readiness, configuration and statistics, as Triton reports them.

Each needs a key whose scopes cover the model; the statistics of all models together
(`GET /v2/models/stats`) need the admin scope, so a scoped key never learns the names or
numbers of models outside its scopes. Only these paths reach Triton: any other path under
`/v2/models` is a 404 from the gateway itself."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway.errors import BadRequest
from gateway.rest.deps import AdminGrant, ModelGrant, ServicesDep, json_response

router = APIRouter(tags=["models"])


# Before `/v2/models/{model}`, which would take "stats" for a model name (so does Triton).
@router.get("/v2/models/stats")
async def all_statistics(services: ServicesDep, _: AdminGrant) -> Response:
    """Inference statistics of every model version (admin)."""
    return json_response({"model_stats": await services.triton.control.model_statistics()})


@router.get("/v2/models/{model}/stats")
@router.get("/v2/models/{model}/versions/{version}/stats")
async def statistics(
    services: ServicesDep, _: ModelGrant, model: str, version: str = ""
) -> Response:
    """Inference statistics of one model (or version): Triton's, and nothing of others."""
    stats = await services.triton.control.model_statistics(model, version)
    return json_response({"model_stats": [s for s in stats if s.get("name") == model]})


@router.get("/v2/models/{model}")
@router.get("/v2/models/{model}/versions/{version}")
async def metadata(services: ServicesDep, _: ModelGrant, model: str, version: str = "") -> Response:
    return json_response(await services.triton.control.model_metadata(model, version))


@router.get("/v2/models/{model}/ready")
@router.get("/v2/models/{model}/versions/{version}/ready")
async def ready(services: ServicesDep, _: ModelGrant, model: str, version: str = "") -> Response:
    """200 when the model (version) is loaded and ready; 400 otherwise, as Triton does."""
    if not await services.triton.control.is_model_ready(model, version):
        described = f"model '{model}'" + (f" version {version}" if version else "")
        raise BadRequest(f"{described} is not ready")
    return Response(status_code=200)


@router.get("/v2/models/{model}/config")
@router.get("/v2/models/{model}/versions/{version}/config")
async def config(services: ServicesDep, _: ModelGrant, model: str, version: str = "") -> Response:
    return json_response(await services.triton.control.model_config(model, version))

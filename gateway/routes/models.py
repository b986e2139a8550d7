"""Model metadata, readiness and configuration, as Triton reports them.

Each needs a key whose scopes cover the model."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway.deps import ModelGrant, ServicesDep, json_response
from gateway.errors import BadRequest

router = APIRouter(tags=["models"])


@router.get("/v2/models/{model}")
@router.get("/v2/models/{model}/versions/{version}")
async def metadata(services: ServicesDep, _: ModelGrant, model: str, version: str = "") -> Response:
    return json_response(await services.triton.model_metadata(model, version))


@router.get("/v2/models/{model}/ready")
@router.get("/v2/models/{model}/versions/{version}/ready")
async def ready(services: ServicesDep, _: ModelGrant, model: str, version: str = "") -> Response:
    """200 when the model (version) is loaded and ready; 400 otherwise, as Triton does."""
    if not await services.triton.is_model_ready(model, version):
        described = f"model '{model}'" + (f" version {version}" if version else "")
        raise BadRequest(f"{described} is not ready")
    return Response(status_code=200)


@router.get("/v2/models/{model}/config")
@router.get("/v2/models/{model}/versions/{version}/config")
async def config(services: ServicesDep, _: ModelGrant, model: str, version: str = "") -> Response:
    return json_response(await services.triton.model_config(model, version))

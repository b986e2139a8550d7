"""`/admin/models`: the model lifecycle over REST (admin scope).

GET    /admin/models                              models, versions, states, splits
POST   /admin/models/{model}                      add a model: an ONNX file as the body
                                                  (its config derived and version 1
                                                  published; ?dry_run=true shows the config
                                                  only; max_batch_size, instances,
                                                  dynamic_batching), or a model folder as a
                                                  tar archive (application/x-tar, gzip or
                                                  not), taken as it is
POST   /admin/models/{model}/versions             publish: the ONNX file as the body
                                                  (application/octet-stream), or JSON
                                                  {"path": "<file on the gateway host>"} or
                                                  {"from": "models:/<name>/<v>|@<alias>"}
                                                  (an MLflow registry version)
POST   /admin/models/{model}/sync                 {"registered_model": "<name>"}: registry
                                                  aliases -> versions and traffic
DELETE /admin/models/{model}/versions/{version}   unload
PUT    /admin/models/{model}/traffic              {"weights": {"1": 90, "2": 10}, "sticky": false,
                                                   "shadow": {"version": "3", "percent": 10}}
                                                  (shadow optional: mirrored, never served)
POST   /admin/models/{model}/promote              {"version": "2", "force": false}
POST   /admin/models/{model}/rollback             the split before the last change
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.control.lifecycle import TrafficSplit
from gateway.control.lifecycle.archive import TAR_TYPES, folder_files
from gateway.control.lifecycle.new_model import DEFAULT_MAX_BATCH_SIZE, ModelOptions
from gateway.control.lifecycle.traffic import Shadow
from gateway.control.registry.sync import RegistrySync
from gateway.errors import BadRequest, PayloadTooLarge
from gateway.rest.deps import AdminGrant, ServicesDep, json_response
from gateway.services import Services
from resilience import StoreUnavailable

router = APIRouter(prefix="/admin/models", tags=["admin"])


class ShadowBody(BaseModel):
    """The shadow of a traffic split."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="the version that gets copies of requests")
    percent: float = Field(gt=0, le=100, description="share of the model's requests mirrored")


class Traffic(BaseModel):
    """Body of `PUT /admin/models/{model}/traffic`."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, int] = Field(description="version -> weight, e.g. {'1': 90, '2': 10}")
    sticky: bool = Field(default=False, description="each key always gets the same version")
    shadow: ShadowBody | None = Field(default=None, description="mirror requests to a version")


class Promotion(BaseModel):
    """Body of `POST /admin/models/{model}/promote`."""

    model_config = ConfigDict(extra="forbid")

    version: str
    force: bool = Field(default=False, description="skip the quality gate")


def _split(split: TrafficSplit | None) -> dict[str, object] | None:
    return None if split is None else split.describe()


@router.get("")
async def list_models(services: ServicesDep, _: AdminGrant) -> Response:
    models = await services.lifecycle.describe()
    for model in models:  # where each version came from, if from a registry
        with contextlib.suppress(StoreUnavailable):
            sources = await services.provenance.of_model(model["name"])
            for version in model["versions"]:
                source = sources.get(version["version"])
                if source is not None:
                    version["registry"] = source.as_dict()
    return json_response({"models": models})


class Sync(BaseModel):
    """Body of `POST /admin/models/{model}/sync`."""

    model_config = ConfigDict(extra="forbid")

    registered_model: str = Field(description="the registered model whose aliases to follow")


@router.post("/{model}/sync")
async def sync(model: str, body: Sync, services: ServicesDep, _: AdminGrant) -> Response:
    report = await _registry(services).sync(model, body.registered_model)
    return json_response(report.as_dict())


def _registry(services: Services) -> RegistrySync:
    if services.registry is None:
        raise BadRequest("no model registry configured: set GATEWAY_MLFLOW_TRACKING_URI")
    return services.registry


@router.post("/{model}/versions", status_code=201)
async def publish(model: str, request: Request, services: ServicesDep, _: AdminGrant) -> Response:
    limit = services.settings.max_upload_bytes
    if request.headers.get("content-type", "").startswith("application/json"):
        document = orjson.loads(await request.body())
        if "from" in document:
            published, source = await _registry(services).publish(model, str(document["from"]))
            answer = {"model": model, "version": published, "state": "READY"}
            return json_response({**answer, "registry": source.as_dict()}, 201)
        path = Path(str(document.get("path", "")))
        if not path.is_file():
            raise BadRequest(f"no model file at '{path}' on the gateway host")
        if path.stat().st_size > limit:
            raise PayloadTooLarge(
                f"the model file has {path.stat().st_size} bytes; the limit is {limit}"
            )
        data = path.read_bytes()
    else:
        data = await _upload(request, limit)
    version = await services.lifecycle.publish(model, data)
    return json_response({"model": model, "version": str(version), "state": "READY"}, 201)


@router.post("/{model}", status_code=201)
async def add(
    model: str,
    request: Request,
    services: ServicesDep,
    _: AdminGrant,
    dry_run: bool = False,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    instances: int = 1,
    dynamic_batching: bool = True,
) -> Response:
    data = await _upload(request, services.settings.max_upload_bytes)
    lifecycle = services.lifecycle
    if request.headers.get("content-type", "").startswith(TAR_TYPES):
        if dry_run:
            raise BadRequest("dry_run applies to an ONNX file; a folder is taken as it is")
        files = folder_files(data, services.settings.max_upload_bytes)
        return json_response(await lifecycle.add_folder(model, files), 201)
    options = ModelOptions(max_batch_size, instances, dynamic_batching)
    added = await lifecycle.add(model, data, options, dry_run)
    return json_response(added, 200 if dry_run else 201)


async def _upload(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise PayloadTooLarge(f"the model file exceeds the limit of {limit} bytes")
    return bytes(received)


@router.delete("/{model}/versions/{version}")
async def unload(model: str, version: str, services: ServicesDep, _: AdminGrant) -> Response:
    await services.lifecycle.unload(model, version)
    return json_response({"model": model, "version": version, "state": "UNLOADED"})


@router.put("/{model}/traffic")
async def traffic(model: str, body: Traffic, services: ServicesDep, _: AdminGrant) -> Response:
    shadow = Shadow(body.shadow.version, body.shadow.percent) if body.shadow else None
    split, warm_ups = await services.lifecycle.split(model, body.weights, body.sticky, shadow)
    return json_response({"model": model, "traffic": _split(split), "warm_up": warm_ups})


@router.post("/{model}/promote")
async def promote(model: str, body: Promotion, services: ServicesDep, _: AdminGrant) -> Response:
    return json_response(await services.lifecycle.promote(model, body.version, body.force))


@router.post("/{model}/rollback")
async def rollback(model: str, services: ServicesDep, _: AdminGrant) -> Response:
    split = await services.lifecycle.rollback(model)
    return json_response({"model": model, "traffic": _split(split)})

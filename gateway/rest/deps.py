"""Typed FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import Depends, Request, Response

from gateway.pipeline.access import Grant
from gateway.services import Services


def _services(request: Request) -> Services:
    services: Services = request.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def _model_grant(request: Request, services: ServicesDep, model: str) -> Grant:
    return await services.access.for_model(request.headers.raw, model)


async def _admin_grant(request: Request, services: ServicesDep) -> Grant:
    return await services.access.for_admin(request.headers.raw)


async def _any_grant(request: Request, services: ServicesDep) -> Grant:
    return await services.access.for_anyone_with_a_key(request.headers.raw)


ModelGrant = Annotated[Grant, Depends(_model_grant)]
"""A key whose scopes cover the path's `{model}`."""
AdminGrant = Annotated[Grant, Depends(_admin_grant)]
"""A key with the admin scope."""
AnyGrant = Annotated[Grant, Depends(_any_grant)]
"""Any valid key."""


def json_response(document: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code, media_type="application/json")

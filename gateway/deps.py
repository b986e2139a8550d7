"""Typed FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import Depends, Request, Response

from gateway.services import Services


def _services(request: Request) -> Services:
    services: Services = request.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


def json_response(document: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code, media_type="application/json")

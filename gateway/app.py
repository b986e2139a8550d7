"""The ASGI application: the infer endpoint in front of a FastAPI app for everything else.

create_app(settings)    -> the app, for uvicorn or a test client
app_from_environment()  -> the same, settings read from GATEWAY_* (uvicorn factory)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from gateway import __version__
from gateway.error_handlers import install_error_handlers
from gateway.infer_endpoint import InferEndpoint
from gateway.logs import configure_logging
from gateway.routes import admin_cache, admin_keys, health, metrics, models
from gateway.services import open_services
from gateway.settings import Settings


def create_app(settings: Settings) -> ASGIApp:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with open_services(settings) as services:
            # Lifespan state: copied into every request's scope["state"].
            yield {"services": services}

    api = FastAPI(
        title="gateway",
        version=__version__,
        summary="KServe v2 inference gateway in front of Triton",
        lifespan=lifespan,
    )
    api.include_router(health.router)
    api.include_router(models.router)
    api.include_router(admin_keys.router)
    api.include_router(admin_cache.router)
    api.include_router(metrics.router)
    install_error_handlers(api)
    return InferEndpoint(api)


def app_from_environment() -> ASGIApp:
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)

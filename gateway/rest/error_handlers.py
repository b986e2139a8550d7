"""FastAPI exception handlers: every error leaves as `{"error": "..."}` with its status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from gateway.errors import GatewayError, error_body

logger = logging.getLogger(__name__)


async def _gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)  # noqa: S101 - registered for this type only
    return Response(exc.body(), exc.status, exc.headers(), media_type="application/json")


async def _http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this type only
    return Response(
        error_body(str(exc.detail)), exc.status_code, exc.headers, media_type="application/json"
    )


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return Response(error_body(problems), 400, media_type="application/json")


async def _unexpected(_: Request, exc: Exception) -> Response:
    logger.error("request failed unexpectedly", exc_info=exc)
    return Response(
        error_body(f"internal error: {type(exc).__name__}"), 500, media_type="application/json"
    )


HANDLERS = {
    GatewayError: _gateway_error,
    HTTPException: _http_exception,
    RequestValidationError: _validation_error,
    Exception: _unexpected,
}


def install_error_handlers(app: FastAPI) -> None:
    for exception, handler in HANDLERS.items():
        app.add_exception_handler(exception, handler)

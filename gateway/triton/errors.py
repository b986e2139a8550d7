"""Translate Triton's gRPC and HTTP failures into gateway errors, once, at the boundary."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import httpx
import orjson

from gateway.errors import (
    BadRequest,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    TritonUnavailable,
    UpstreamError,
)

# Triton prefixes many messages with "[request id: <id_unknown>] "; it says nothing to a client.
_REQUEST_ID_PREFIX = re.compile(r"^\[request id: [^\]]*\]\s*")

_GRPC_STATUS: dict[grpc.StatusCode, type[GatewayError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: BadRequest,
    grpc.StatusCode.OUT_OF_RANGE: BadRequest,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNIMPLEMENTED: BadRequest,
}
_UNAVAILABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


def clean_message(message: str) -> str:
    return _REQUEST_ID_PREFIX.sub("", message.strip())


@contextmanager
def grpc_errors(retry_after_s: int) -> Iterator[None]:
    """Inside: a failed gRPC call to Triton raises the matching `GatewayError`."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        details = clean_message(exc.details() or code.name)
        if code in _UNAVAILABLE:
            reason = (
                "did not answer in time"
                if code is grpc.StatusCode.DEADLINE_EXCEEDED
                else ("is unavailable")
            )
            raise TritonUnavailable(f"Triton {reason}: {details}", retry_after_s) from exc
        raise _GRPC_STATUS.get(code, UpstreamError)(details) from exc


@contextmanager
def http_errors(retry_after_s: int) -> Iterator[None]:
    """Inside: a transport failure talking HTTP to Triton raises `TritonUnavailable`."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TritonUnavailable("Triton did not answer in time", retry_after_s) from exc
    except httpx.TransportError as exc:
        raise TritonUnavailable(f"Triton is unavailable: {exc}", retry_after_s) from exc


def raise_for_http_status(response: httpx.Response, retry_after_s: int) -> None:
    """Raise the gateway error matching a non-2xx answer of Triton's HTTP API."""
    if response.is_success:
        return
    message = _http_message(response)
    if response.status_code == 404:
        raise NotFound(message)
    if response.status_code == 400:
        raise BadRequest(message)
    if response.status_code in (502, 503, 504):
        raise ServiceUnavailable(f"Triton is unavailable: {message}", retry_after_s)
    raise UpstreamError(message)


def _http_message(response: httpx.Response) -> str:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return f"Triton answered {response.status_code}"
    error = document.get("error") if isinstance(document, dict) else None
    return clean_message(str(error)) if error else f"Triton answered {response.status_code}"

"""Translate Triton's failures into gateway errors, once, at the boundary.

Transport failures (refused, reset, closed early, not HTTP, past the deadline) mean Triton
is unavailable: 503 with Retry-After. An answer with an error status keeps Triton's
message: 400 and 404 pass through, 502/503/504 mean unavailable, anything else is Triton's
own failure (500).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httptools
import httpx
import orjson

from gateway.errors import BadRequest, NotFound, TritonUnavailable, UpstreamError

# Triton prefixes many messages with "[request id: <id_unknown>] "; it says nothing to a client.
_REQUEST_ID_PREFIX = re.compile(r"^\[request id: [^\]]*\]\s*")


def clean_message(message: str) -> str:
    return _REQUEST_ID_PREFIX.sub("", message.strip())


@contextmanager
def infer_errors(retry_after_s: int) -> Iterator[None]:
    """Inside: a failed inference call (`ConnectionPool`) raises `TritonUnavailable`."""
    try:
        yield
    except TimeoutError as exc:
        raise TritonUnavailable("Triton did not answer in time", retry_after_s) from exc
    except (OSError, httptools.HttpParserError) as exc:
        reason = str(exc) or type(exc).__name__
        raise TritonUnavailable(f"Triton is unavailable: {reason}", retry_after_s) from exc


@contextmanager
def http_errors(retry_after_s: int) -> Iterator[None]:
    """Inside: a transport failure of a control-plane call (httpx) raises `TritonUnavailable`."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TritonUnavailable("Triton did not answer in time", retry_after_s) from exc
    except httpx.TransportError as exc:
        raise TritonUnavailable(f"Triton is unavailable: {exc}", retry_after_s) from exc


def raise_for_http_status(response: httpx.Response, retry_after_s: int) -> None:
    """Raise the gateway error matching a non-2xx answer of Triton's HTTP API."""
    raise_for_status(response.status_code, response.content, retry_after_s)


def raise_for_status(status: int, body: bytes, retry_after_s: int) -> None:
    if 200 <= status < 300:
        return
    message = _message(status, body)
    if status == 404:
        raise NotFound(message)
    if status == 400:
        raise BadRequest(message)
    if status in (502, 503, 504):
        raise TritonUnavailable(f"Triton is unavailable: {message}", retry_after_s)
    raise UpstreamError(message)


def _message(status: int, body: bytes) -> str:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"Triton answered {status}"
    error = document.get("error") if isinstance(document, dict) else None
    return clean_message(str(error)) if error else f"Triton answered {status}"

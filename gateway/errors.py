"""Errors the gateway answers with, each knowing its HTTP status.

Every error reaches the client in the KServe v2 form `{"error": "<message>"}`.

    GatewayError                 500  something failed inside the gateway
    ├── BadRequest               400  the request is malformed (names the field or input)
    ├── Unauthorized             401  no valid API key; carries WWW-Authenticate
    ├── Forbidden                403  the key may not use this model, or /admin
    ├── NotFound                 404  unknown model, version or path
    ├── MethodNotAllowed         405  e.g. GET on an infer path
    ├── RequestTimeout           408  the body did not arrive in time; the connection closes
    ├── PayloadTooLarge          413  body over GATEWAY_MAX_BODY_BYTES (inflated, if compressed)
    ├── UnsupportedMediaType     415  a Content-Encoding other than gzip, deflate, identity
    ├── TooManyRequests          429  the key's rate limit is spent; carries RateLimit-*
    ├── UpstreamError            500  Triton answered with an error of its own
    └── ServiceUnavailable       503  a dependency is down; carries Retry-After
        ├── TritonUnavailable         Triton unreachable or not answering
        │   └── InferenceTimeout 504  the model did not answer within its deadline
        └── TritonBusy                enough of this worker's requests wait on Triton

`ClientDisconnected` is no answer at all: the client left before its request arrived.

Third-party exceptions are translated into these once, at the boundary where they occur
(`gateway.backends.triton.client`), with `raise ... from exc`.
"""

from __future__ import annotations

from typing import ClassVar

import orjson


class GatewayError(Exception):
    """Base of every error the gateway reports to a client."""

    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Extra response headers this error carries."""
        return {}

    def body(self) -> bytes:
        """The v2 error body."""
        return error_body(self.message)


class BadRequest(GatewayError):
    """The request is malformed; the message names what is wrong."""

    status = 400


class Unauthorized(GatewayError):
    """No valid API key was presented."""

    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="gateway"'}


class Forbidden(GatewayError):
    """The key is valid but may not do this."""

    status = 403


class NotFound(GatewayError):
    """The model, version or path does not exist."""

    status = 404


class MethodNotAllowed(GatewayError):
    """The path exists but not for this HTTP method."""

    status = 405


class RequestTimeout(GatewayError):
    """The request body did not arrive before its deadline; the connection is closed."""

    status = 408

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}  # what is left of the body must not become a request


class PayloadTooLarge(GatewayError):
    """The request body is larger than the configured limit."""

    status = 413


class UnsupportedMediaType(GatewayError):
    """The request body is encoded in a way the gateway (and Triton) cannot read."""

    status = 415


class TooManyRequests(GatewayError):
    """The key's rate limit is spent; the headers say when to come back."""

    status = 429

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self._headers = headers

    def headers(self) -> dict[str, str]:
        return dict(self._headers)


class UpstreamError(GatewayError):
    """Triton reported an internal error while serving the request."""

    status = 500


class ServiceUnavailable(GatewayError):
    """A dependency is unavailable; the client should retry after a while."""

    status = 503

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class TritonUnavailable(ServiceUnavailable):
    """Triton cannot be reached or did not answer within its deadline."""


class InferenceTimeout(TritonUnavailable):
    """The model did not answer within its deadline (its `inference_timeout_s`, or one
    fitted to its latency); Triton itself may be fine. Like any failure to answer, a stale
    cached answer may stand in (RFC 5861 counts 504 among the errors)."""

    status = 504


class TritonBusy(ServiceUnavailable):
    """GATEWAY_TRITON_MAX_IN_FLIGHT calls of this worker already wait on Triton (a slow or
    saturated Triton, not necessarily a sick one: it does not mark Triton degraded)."""


def error_body(message: str) -> bytes:
    """Encode a message in the v2 error form."""
    return orjson.dumps({"error": message})


class ClientDisconnected(Exception):
    """The client went away before its request body arrived; nothing can be answered."""

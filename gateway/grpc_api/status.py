"""Gateway errors as gRPC status codes, the way Triton's gRPC front maps them, with the same
messages as REST; a 429 or 503 also carries when to retry (RetryInfo, and `retry-after`)."""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.errors import GatewayError, ServiceUnavailable, TooManyRequests

CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(error: GatewayError) -> grpc.StatusCode:
    return CODES.get(error.status, grpc.StatusCode.INTERNAL)


def trailers(error: GatewayError) -> list[tuple[str, str | bytes]]:
    """What a client needs besides the code and message: the rate-limit values and, when it
    should come back later, RetryInfo in `grpc-status-details-bin` (as grpcio-status
    writes it) and `retry-after`."""
    metadata: list[tuple[str, str | bytes]] = [
        (name.lower(), value)
        for name, value in error.headers().items()
        if name.lower() != "www-authenticate"
    ]
    retry_s = _retry_after_s(error)
    if retry_s is not None:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_s))
        status = status_pb2.Status(code=grpc_code(error).value[0], message=error.message)
        status.details.add().Pack(info)
        metadata.append(("grpc-status-details-bin", status.SerializeToString()))
    return metadata


def _retry_after_s(error: GatewayError) -> int | None:
    if isinstance(error, ServiceUnavailable):
        return error.retry_after_s
    if isinstance(error, TooManyRequests):
        value = error.headers().get("Retry-After")
        return int(value) if value and value.isdigit() else 1
    return None

"""Triton's gRPC and HTTP failures become the gateway's errors with the right status."""

from __future__ import annotations

import grpc
import httpx
import pytest

from gateway.errors import GatewayError, TritonUnavailable
from gateway.triton.errors import grpc_errors, http_errors, raise_for_http_status


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 503),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 503),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNKNOWN, 500),
    ],
)
def test_grpc_status_codes_map_to_http_statuses(code: grpc.StatusCode, status: int) -> None:
    with pytest.raises(GatewayError) as caught, grpc_errors(retry_after_s=4):
        raise rpc_error(code, "[request id: <id_unknown>] input 'x' is wrong")
    assert caught.value.status == status
    assert not caught.value.message.startswith("[request id")
    assert "input 'x' is wrong" in caught.value.message
    if status == 503:
        assert caught.value.headers() == {"Retry-After": "4"}


def test_http_transport_failures_are_unavailable() -> None:
    with pytest.raises(TritonUnavailable, match="in time"), http_errors(retry_after_s=1):
        raise httpx.ReadTimeout("slow")
    with pytest.raises(TritonUnavailable, match="unavailable"), http_errors(retry_after_s=1):
        raise httpx.ConnectError("refused")


@pytest.mark.parametrize(("status", "expected"), [(400, 400), (404, 404), (503, 503), (500, 500)])
def test_http_statuses_keep_tritons_message(status: int, expected: int) -> None:
    response = httpx.Response(status, json={"error": "Request for unknown model: 'm' is not found"})
    with pytest.raises(GatewayError) as caught:
        raise_for_http_status(response, retry_after_s=1)
    assert caught.value.status == expected
    assert "unknown model" in caught.value.message

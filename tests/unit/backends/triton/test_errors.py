"""Triton's failures become the gateway's errors with the right status."""

from __future__ import annotations

import httptools
import httpx
import orjson
import pytest

from gateway.backends.triton.errors import http_errors, infer_errors, raise_for_status
from gateway.errors import GatewayError, TritonUnavailable


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, 400), (404, 404), (500, 500), (502, 503), (503, 503), (504, 503), (409, 500)],
)
def test_triton_statuses_map_to_gateway_statuses_keeping_the_message(
    status: int, expected: int
) -> None:
    body = orjson.dumps({"error": "[request id: <id_unknown>] unexpected shape for input 'x'"})
    with pytest.raises(GatewayError) as caught:
        raise_for_status(status, body, retry_after_s=4)
    assert caught.value.status == expected
    assert caught.value.message.endswith("unexpected shape for input 'x'")
    assert "[request id" not in caught.value.message
    if expected == 503:
        assert caught.value.headers() == {"Retry-After": "4"}


def test_success_and_bodies_without_json() -> None:
    raise_for_status(200, b"", retry_after_s=1)
    with pytest.raises(GatewayError, match="Triton answered 500"):
        raise_for_status(500, b"<html>", retry_after_s=1)


def test_transport_failures_are_unavailable() -> None:
    with pytest.raises(TritonUnavailable, match="in time"), infer_errors(retry_after_s=1):
        raise TimeoutError
    with pytest.raises(TritonUnavailable, match="unavailable: refused"), infer_errors(1):
        raise ConnectionRefusedError("refused")
    reset = pytest.raises(TritonUnavailable, match="unavailable: ConnectionResetError")
    with reset, infer_errors(retry_after_s=1):
        raise ConnectionResetError
    with pytest.raises(TritonUnavailable, match="unavailable: bad status"), infer_errors(1):
        raise httptools.HttpParserInvalidStatusError("bad status")
    with pytest.raises(TritonUnavailable, match="in time"), http_errors(retry_after_s=1):
        raise httpx.ReadTimeout("slow")
    with pytest.raises(TritonUnavailable, match="unavailable"), http_errors(retry_after_s=1):
        raise httpx.ConnectError("refused")

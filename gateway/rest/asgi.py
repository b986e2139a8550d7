"""Reading requests and sending responses at the plain-ASGI level (no framework)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from starlette.types import Message, Receive, Scope, Send

from gateway.errors import (
    BadRequest,
    ClientDisconnected,
    GatewayError,
    PayloadTooLarge,
    RequestTimeout,
)
from gateway.protocol.headers import header
from gateway.rest.compression import inflate
from gateway.runtime.deadlines import BODY_ARRIVED, BodyDeadline
from gateway.settings import Settings


def int_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> int | None:
    """A length header's value: ASCII digits only (int() would also take "1_8_1", " +7",
    or other scripts' digits), at most 18 of them."""
    value = header(headers, name)
    if value is None:
        return None
    value = value.strip(b" \t")
    if not (value.isdigit() and len(value) <= 18):  # bytes.isdigit: ASCII digits only
        raise BadRequest(f"header {name.decode()} must be a non-negative integer")
    return int(value)


async def read_body(
    receive: Receive,
    headers: Iterable[tuple[bytes, bytes]],
    limit: int,
    deadline: BodyDeadline,
    arrived: bool = False,
) -> bytes:
    """The whole request body; 413 as soon as it is known to exceed `limit` bytes, 408 if it
    has not arrived before its deadline. `arrived`: the server has received all of it
    already (nothing to wait for, so no deadline is armed)."""
    declared = int_header(headers, b"content-length")
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the request body has {declared} bytes; the limit is {limit}")
    if arrived:
        return await _receive_body(receive, limit)
    timeout_s = deadline.seconds(declared, limit)
    try:
        async with asyncio.timeout(timeout_s):
            return await _receive_body(receive, limit)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout_s:.0f} s") from None


async def _receive_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_inflated(scope: Scope, receive: Receive, settings: Settings) -> bytes:
    """The request's body within the settings' limit and deadline, gzip/deflate inflated
    (413 if the inflated body is over the limit)."""
    headers, limit = scope["headers"], settings.max_body_bytes
    deadline = BodyDeadline(settings.body_timeout_s, settings.body_min_rate)
    received = await read_body(receive, headers, limit, deadline, BODY_ARRIVED in scope)
    return inflate(received, header(headers, b"content-encoding"), limit)


async def send_response(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-length", str(len(body)).encode()), *headers],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: GatewayError) -> None:
    headers = [(b"content-type", b"application/json")]
    headers.extend((k.lower().encode(), v.encode()) for k, v in error.headers().items())
    await send_response(send, error.status, error.body(), headers)

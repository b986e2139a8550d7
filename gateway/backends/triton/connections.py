"""`ConnectionPool`: kept-alive HTTP/1.1 connections to Triton for the inference call.

The one request the hot path makes to Triton is always the same shape: a POST with a
Content-Length body to one host, answered with a Content-Length body. This pool does only
that, on asyncio protocols with `httptools` (the C parser uvicorn already uses) reading the
answer: one `write` per request, no per-request session, cookie, URL or header objects.
Measured against aiohttp on this path (`loadtests/investigations/triton_clients.py`): a
third of the CPU per call with one call in flight, a quarter to a fifth with 16, and 0.3 ms
or more off the
p50 at one in flight (docs/triton-client.md).

Rules:
- at most `max_connections` calls in flight; the rest wait their turn;
- a connection goes back to the pool only after a complete answer that allows keep-alive;
  a connection whose call failed, timed out or was cancelled is closed, since a late
  answer on it would be read as the next call's;
- connections idle for longer than `idle_timeout_s` are closed rather than reused, well
  before a server would drop them, so a reused connection is not one the server is closing.

Failures raise `OSError` (refused, reset, closed early), `TimeoutError` (past the caller's
deadline) or `httptools.HttpParserError` (not HTTP): `gateway.backends.triton.errors`
translates them.
Two of them say how far the call got, for a retry on another Triton to rely on:
`RequestNotSent` (no connection, or it was closed before the request was written: Triton
never saw the call) and `NoAnswer` (written, then the connection closed before a byte of
the answer came back). An answer whose body grows past `max_answer_bytes` is not read
further: `AnswerTooLarge` (an `UnusableAnswer`, 502), and the connection is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools

from gateway.backends.triton.answers import UnusableAnswer

DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024


class RequestNotSent(ConnectionError):
    """The call failed before its request was written: Triton cannot have run it."""


class NoAnswer(ConnectionResetError):
    """The request was written, and the connection closed before any answer came."""


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: status, headers with lower-case names, body."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes


class AnswerTooLarge(UnusableAnswer):
    """An answer's body is over the pool's limit (read no further; the connection closes)."""


class _Connection(asyncio.Protocol):
    """One TCP connection; one call at a time."""

    def __init__(self, max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES) -> None:
        self._max_answer_bytes = max_answer_bytes
        self._answer_bytes = 0
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        # Made by create_connection, in its loop; looked up once, as each lookup costs a
        # system call (getpid) on Python 3.11.
        self._loop = asyncio.get_running_loop()
        self._answer: asyncio.Future[Response] | None = None
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._received = False  # a byte of the current call's answer
        self.closed = False
        self.idle_since = time.monotonic()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # TCP: always a Transport

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._received:
            reason = f": {exc}" if exc else ""
            self._fail(NoAnswer(f"Triton closed the connection without answering{reason}"))
        else:
            self._fail(exc or ConnectionResetError("Triton closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._answer_bytes += len(body)
        if self._answer_bytes > self._max_answer_bytes:
            self._body.clear()
            self._fail(
                AnswerTooLarge(
                    f"Triton's answer is over {self._max_answer_bytes} bytes "
                    "(GATEWAY_TRITON_MAX_ANSWER_BYTES)"
                )
            )
            self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.close()
        if self._answer is not None and not self._answer.done():
            status = self._parser.get_status_code()
            self._answer.set_result(Response(status, self._headers, b"".join(self._body)))

    async def call(self, request: bytes) -> Response:
        if self._transport is None or self.closed:
            raise RequestNotSent("the connection to Triton is closed")
        self._answer = self._loop.create_future()
        self._headers, self._body, self._received = {}, [], False
        self._answer_bytes = 0
        self._transport.write(request)
        return await self._answer

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)


class ConnectionPool:
    """HTTP/1.1 POSTs to one `host:port`, over connections kept open between calls."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int,
        idle_timeout_s: float = 15.0,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self._host, self._port = host, port
        self._max_answer_bytes = max_answer_bytes
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # IPv6 in brackets
        self._host_header = f"Host: {authority}\r\n".encode("latin-1")
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[_Connection] = deque()
        self._idle_timeout_s = idle_timeout_s

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> Response:
        """POST `body` to `path`. `headers` must be the caller's own (no CR or LF)."""
        head = [f"POST {path} HTTP/1.1\r\n".encode("latin-1"), self._host_header]
        head += [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()]
        head.append(b"Content-Length: %d\r\n\r\n" % len(body))
        request = b"".join(head) + body
        async with self._slots:
            connection = await self._connection()
            try:
                response = await connection.call(request)
            except BaseException:  # failed, past its deadline or cancelled: never reuse
                connection.close()
                raise
            if not connection.closed:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            return response

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle and now - self._idle[0].idle_since >= self._idle_timeout_s:
            self._idle.popleft().close()  # the least recently used, gone stale
        while self._idle:
            connection = self._idle.pop()  # the most recently used: warmest, least likely stale
            if not connection.closed and now - connection.idle_since < self._idle_timeout_s:
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self._max_answer_bytes), self._host, self._port
            )
        except OSError as exc:  # refused, unreachable, no route: nothing was sent
            raise RequestNotSent(str(exc) or type(exc).__name__) from exc
        return connection

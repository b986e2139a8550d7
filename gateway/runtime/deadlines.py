"""Deadlines for slow clients: a slow client costs at most its own connection, for a while.

headers    HeaderDeadlineProtocol: uvicorn's HTTP/1.1 protocol (httptools) with a
           deadline of GATEWAY_HEADER_TIMEOUT_S from a connection's opening, or from
           the first byte of a request on a kept-alive connection, to the end of that
           request's headers; past it the connection gets a 408 and is closed (uvicorn
           has no such deadline: a client sending headers a byte at a time kept its
           connection for ever). The timer is armed only when a request's headers do not
           come whole in one read (a timer per request cost ~2 % of a cache hit's CPU)
body       body_deadline_s(): GATEWAY_BODY_TIMEOUT_S plus the declared length at
           GATEWAY_BODY_MIN_RATE bytes/s; the infer path answers 408 and closes the
           connection past it (before, an announced body that never came held an
           in-flight slot until the client gave up); a body that arrived whole before the
           app reads it (`BODY_ARRIVED` in the ASGI scope, set by the protocol) needs none
idle       uvicorn's keep-alive timeout, GATEWAY_KEEP_ALIVE_S, between requests
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import error_body

DEFAULT_HEADER_TIMEOUT_S = 10.0
BODY_ARRIVED = "gateway.body_arrived"  # scope key: the whole request body has been received


def closing_error(status: bytes, message: str) -> bytes:
    """A whole HTTP/1.1 response carrying the v2 error `message`, closing the connection:
    for the protocol layer, which answers before (or instead of) the app."""
    body = error_body(message)
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, len(body), body)
    )


_TIMEOUT_RESPONSE = closing_error(
    b"408 Request Timeout", "the request headers did not arrive in time"
)


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration plus the gateway's header deadline and head limits (they
    reach each worker process with the configuration, which is pickled)."""

    def __init__(
        self,
        app: Any,
        *,
        header_timeout_s: float,
        max_header_bytes: int,
        max_headers: int,
        **options: Any,
    ) -> None:
        super().__init__(app, **options)
        self.header_timeout_s = header_timeout_s
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose headers come too slowly, and
    telling the app (`BODY_ARRIVED`) when a request's body has arrived whole."""

    _header_deadline: asyncio.TimerHandle | None = None
    _reading_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_headers:  # a request began in this read; its headers did not end
            self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]  # a TypedDict
        scope[BODY_ARRIVED] = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_deadline is None:
            timeout = getattr(self.config, "header_timeout_s", DEFAULT_HEADER_TIMEOUT_S)
            self._header_deadline = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


@dataclass(frozen=True, slots=True)
class BodyDeadline:
    """How long a request body may take: a floor, plus its length at the minimum rate."""

    floor_s: float
    min_rate: int  # bytes per second

    def seconds(self, declared_length: int | None, limit: int) -> float:
        """For a body of `declared_length` bytes (the body limit when not declared)."""
        length = declared_length if declared_length is not None else limit
        return self.floor_s + length / self.min_rate

"""Limits on a request's head, enforced while it is read, before the parser accumulates it.

httptools hands uvicorn a header value (and the URL) in pieces, one per read, and uvicorn
joins them: a head of n bytes costs the worker's event loop time growing with n² (an 80 MB
header value stalled a worker for ~8 s), and a million small headers were accepted. Here:

size    the bytes of a head (request line and headers) are counted as they arrive, before
        they reach the parser; past GATEWAY_MAX_HEADER_BYTES the client gets a 431 and the
        connection is closed. A head is counted from the first byte after the previous
        request's body to its blank line, so a body is never counted
count   past GATEWAY_MAX_HEADERS headers, a 431 too (counted by the parser's callback,
        which raises to stop it)
errors  the HTTP layer's own 400 (a request httptools cannot parse) is a v2 JSON error,
        `{"error": ...}`, like every other error of the gateway
"""

from __future__ import annotations

import asyncio
import logging

from gateway.runtime.deadlines import HeaderDeadlineProtocol, closing_error

logger = logging.getLogger(__name__)

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_HEADERS = 100
_HEAD_END = b"\r\n\r\n"


class HeadTooLarge(Exception):
    """Raised in a parser callback: the head broke a limit (the parser stops there)."""


class HeadLimitProtocol(HeaderDeadlineProtocol):
    """uvicorn's httptools protocol with the header deadline, bounded heads, and v2 JSON
    errors from the HTTP layer."""

    _in_head = True  # the next bytes belong to a head (until its blank line)
    _head_bytes = 0
    _header_count = 0
    _refused: bytes | None = None  # the response for a head that broke a limit
    _refused_head = False
    _max_header_bytes = DEFAULT_MAX_HEADER_BYTES
    _max_headers = DEFAULT_MAX_HEADERS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._max_header_bytes = getattr(self.config, "max_header_bytes", DEFAULT_MAX_HEADER_BYTES)
        self._max_headers = getattr(self.config, "max_headers", DEFAULT_MAX_HEADERS)

    def data_received(self, data: bytes) -> None:
        if self._refused_head:  # closing: nothing more is parsed
            return
        if self._in_head:
            end = data.find(_HEAD_END)
            self._head_bytes += len(data) if end < 0 else end
            if self._head_bytes > self._max_header_bytes:
                self._refuse_head(f"the request head is over {self._max_header_bytes} bytes")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._max_headers:
            self._refused = closing_error(
                b"431 Request Header Fields Too Large",
                f"the request has more than {self._max_headers} headers",
            )
            raise HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def send_400_response(self, msg: str) -> None:
        """The parser gave up on the request: a v2 JSON error (431 if a limit stopped it)."""
        refused, self._refused = self._refused, None
        if refused is None:
            refused = closing_error(b"400 Bad Request", f"invalid HTTP request: {msg}")
        if not self.transport.is_closing():
            self.transport.write(refused)
            self.transport.close()

    def _refuse_head(self, message: str) -> None:
        logger.info("refused a request head: %s", message)
        self._refused_head = True
        if not self.transport.is_closing():
            self.transport.write(closing_error(b"431 Request Header Fields Too Large", message))
            self.transport.close()

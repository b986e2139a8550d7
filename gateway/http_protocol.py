"""The gateway's HTTP/1.1 server protocol: uvicorn's (httptools) with the header deadline of
`gateway.deadlines`, and the writes of one event-loop turn sent together.

uvicorn writes a response's status line and headers when the app sends
`http.response.start`, then its body: two send() calls, and on a kept-alive connection
with Nagle off, two packets. `CoalescingTransport` keeps what is written during an
event-loop turn and sends it at the turn's end in one call: a cache hit took 107 µs of CPU
instead of 144, and 1.34x the throughput (`loadtests/config_ab.py`,
docs/benchmarks/hot-path.md).
Closing first sends what is kept; aborting drops it, as the transport's own abort does.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from gateway.deadlines import HeaderDeadlineProtocol

PROTOCOL = "gateway.http_protocol:GatewayHttpProtocol"  # uvicorn's `http` option


class CoalescingTransport:
    """A transport whose writes within one event-loop turn leave in one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._kept: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._kept:
            self._loop.call_soon(self.flush)
        self._kept.append(bytes(data))

    def flush(self) -> None:
        if not self._kept:
            return
        kept, self._kept = self._kept, []
        if not self._transport.is_closing():
            self._transport.write(kept[0] if len(kept) == 1 else b"".join(kept))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._kept.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._kept))

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, ...
        return getattr(self._transport, name)


class GatewayHttpProtocol(HeaderDeadlineProtocol):
    """uvicorn's httptools protocol with the header deadline and coalesced writes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn's flow control keeps the real transport (pausing reads); every write, by
        # the protocol and by each request's cycle, goes through the coalescing one.
        super().connection_made(transport)
        self.transport = cast(asyncio.Transport, CoalescingTransport(transport, self.loop))

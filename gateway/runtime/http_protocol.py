"""The gateway's HTTP/1.1 server protocol: uvicorn's (httptools) with the header deadline of
`gateway.runtime.deadlines`, the head limits of `gateway.runtime.head_limits`, and each
response sent in one write.

uvicorn writes a response's status line and headers when the app sends
`http.response.start`, then its body: two send() calls, and on a kept-alive connection
with Nagle off, two packets. `CoalescingTransport` keeps the head and sends it with the
body. When the worker is serving other requests too, it sends at the end of the event-loop
turn, so the turn's work comes first and its responses leave in a burst; when this is the
only request, at once, when the body comes. Measured with `loadtests/config_ab.py` against
the code before (docs/benchmarks/hot-path.md), cache hits: 146 → 103 µs of CPU and 1.41x
the throughput at 16 connections, unchanged at one connection (always waiting for the
turn's end cost 0.70x there: the response left after the request's bookkeeping). A write
left alone (a `100 Continue`) goes at the turn's end; closing sends what is kept first,
aborting drops it, as the transport's own abort does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from gateway.runtime.head_limits import HeadLimitProtocol

PROTOCOL = "gateway.runtime.http_protocol:GatewayHttpProtocol"  # uvicorn's `http` option


class CoalescingTransport:
    """A transport that sends a response's writes together: when `busy()` (other requests
    are being served), at the end of the event-loop turn; otherwise as soon as the second
    write (the body) comes. A write left alone goes at the end of the turn."""

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        busy: Callable[[], bool],
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._busy = busy
        self._kept: list[bytes] = []
        self._until_turn_ends = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._kept:  # a response's head: its body comes next, in the same turn
            self._kept.append(bytes(data))
            self._until_turn_ends = self._busy()
            self._loop.call_soon(self.flush)
            return
        self._kept.append(bytes(data))
        if not self._until_turn_ends:
            self.flush()

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


class GatewayHttpProtocol(HeadLimitProtocol):
    """uvicorn's httptools protocol with the header deadline, bounded heads and coalesced
    writes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn's flow control keeps the real transport (pausing reads); every write, by
        # the protocol and by each request's cycle, goes through the coalescing one.
        super().connection_made(transport)
        tasks = self.tasks  # the requests this worker is serving (this one's included)
        coalescing = CoalescingTransport(transport, self.loop, lambda: len(tasks) > 1)
        self.transport = cast(asyncio.Transport, coalescing)

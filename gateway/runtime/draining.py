"""Leaving a load balancer's rotation before stopping: the drain after SIGTERM.

    SIGTERM            readiness answers 503 ("draining"); every response carries
                       `Connection: close`, so keep-alive clients reconnect (to another
                       replica, once the balancer has taken this one out); requests are
                       still served
    + GATEWAY_DRAIN_DELAY_S
                       uvicorn's own stop: no new connections, requests in progress finish
                       within GATEWAY_SHUTDOWN_GRACE_S (`gateway.runtime.serving`)
    second SIGTERM     uvicorn's stop at once

A rolling update (Kubernetes, or two `gateway serve` behind any balancer that follows
readiness) then drops no request: by the time this process stops listening, nobody is
sent to it and no idle connection of a client is left to be cut. With a delay of 0 (the
default, for a single process with nobody to hand over to) SIGTERM stops at once.

The handler wraps uvicorn's own (installed while the server runs, in the main thread of
each worker process); elsewhere, such as a server in a test's thread, there is no drain.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

_CLOSE = (b"connection", b"close")


class Drain:
    """Whether this process is draining, and the SIGTERM handler that starts it."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.draining = False

    def install(self) -> None:
        """Put the drain in front of the current SIGTERM handler (uvicorn's), when there is
        a delay and this is the main thread."""
        if self.delay_s <= 0 or threading.current_thread() is not threading.main_thread():
            return
        stop = signal.getsignal(signal.SIGTERM)
        if not callable(stop):
            return
        loop = asyncio.get_running_loop()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining:  # a second SIGTERM: stop now
                stop(signum, frame)
                return
            self.draining = True
            logger.info(
                "SIGTERM: draining for %.1f s (not ready, connections close after their "
                "response), then stopping",
                self.delay_s,
            )
            loop.call_soon_threadsafe(loop.call_later, self.delay_s, stop, signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)


class ClosingConnections:
    """While draining, every response says `Connection: close` (uvicorn then closes the
    connection once the response is sent)."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.drain.draining or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                message = {**message, "headers": [*headers, _CLOSE]}
            await send(message)

        await self.app(scope, receive, closing_send)

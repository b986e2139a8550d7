"""Failed authentications counted per client address; past the limit, the address waits.

Every request that presents no valid key (missing, malformed, unknown, revoked, expired: a
401) counts against its client address: the peer, or with trusted proxies
(GATEWAY_FORWARDED_ALLOW_IPS) the address they forwarded. Past GATEWAY_AUTH_FAILURES_PER_
MINUTE failures in a minute, every request from that address gets 429 with Retry-After
until the minute ends, before its key is looked at: guessing keys, or flooding the key
store with made-up ids, costs one minute per few attempts. Behind a NAT that many clients
share, raise the limit (0: no limit).

The address of the request being served is a context variable (`CLIENT_ADDRESS`, in
`gateway.observability.requests`), set by each front when a request begins (the ASGI
observer for REST and OpenAI, the gRPC service for each call: its peer), so the pipeline's
signatures need not carry it. Per worker process, at most `max_addresses` addresses are
tracked (the least recently failing go first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import TooManyRequests
from gateway.observability.requests import CLIENT_ADDRESS

__all__ = ["CLIENT_ADDRESS", "AddressThrottled", "FailedAuthThrottle"]

WINDOW_S = 60.0


class AddressThrottled(TooManyRequests):
    """This client address failed to authenticate too often in the last minute."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "too many failed authentications from this address; retry later",
            {"Retry-After": str(max(1, retry_after_s))},
        )


@dataclass(slots=True)
class _Window:
    started_at: float
    failures: int = 0


class FailedAuthThrottle:
    """At most `per_minute` failed authentications per address and minute (0: no limit)."""

    def __init__(
        self,
        per_minute: int,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_minute = per_minute
        self._max_addresses = max_addresses
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def check(self, address: str | None) -> None:
        """`AddressThrottled` if `address` is past its failures for this minute."""
        if not self._per_minute or address is None:
            return
        window = self._windows.get(address)
        if window is None or window.failures < self._per_minute:
            return
        left = window.started_at + WINDOW_S - self._clock()
        if left <= 0:
            del self._windows[address]
            return
        raise AddressThrottled(int(left) + 1)

    def failed(self, address: str | None) -> None:
        """One more failed authentication from `address`."""
        if not self._per_minute or address is None:
            return
        now = self._clock()
        window = self._windows.get(address)
        if window is None or now - window.started_at >= WINDOW_S:
            window = self._windows[address] = _Window(now)
        window.failures += 1
        self._windows.move_to_end(address)
        while len(self._windows) > self._max_addresses:
            self._windows.popitem(last=False)

"""`TritonHealth`: Triton's readiness as a background probe last saw it.

    ready         what `/v2/health/ready` answers from, at once, whatever Triton does (a
                  hung Triton used to make readiness itself wait for the control timeout)
    every probe   GET /v2/health/ready with a short deadline, every GATEWAY_TRITON_PROBE_S:
                  anything but 200 makes the gateway not ready; TRIP_AFTER probes in a row
                  without any answer (refused, reset, past the deadline: Triton is down or
                  hung; a "not ready" answer, as while a model reloads, is no outage) trip
                  the client's breaker and cut the inference calls in flight short, so a
                  hung Triton holds no request slots (cache hits keep being served) and new
                  misses fail fast with 503; an answer closes the breaker again

Inference calls feed the same breaker (consecutive transport failures open it), so a dead
Triton is noticed by whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.triton.client import Readiness, TritonClient

logger = logging.getLogger(__name__)

TRIP_AFTER = 2  # failed probes in a row: one slow probe on a busy machine is no outage


class TritonHealth:
    """Keeps `ready` current and drives the Triton client's breaker."""

    def __init__(self, client: TritonClient, interval_s: float, timeout_s: float) -> None:
        self._client = client
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self.ready = False

    async def start(self) -> None:
        """Probe once (so readiness is known before serving), then keep probing."""
        await self.probe()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="triton-health")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def probe(self) -> None:
        readiness = await self._client.readiness(self._timeout_s)
        self.ready = readiness is Readiness.READY
        if readiness is not Readiness.NO_ANSWER:
            if self._failures >= TRIP_AFTER:
                logger.info("Triton answers its health probe again")
                self._client.recovered()
            self._failures = 0
            return
        self._failures += 1
        if self._failures == TRIP_AFTER:
            self._client.trip(f"its health probe got no answer {TRIP_AFTER} times in a row")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.probe()

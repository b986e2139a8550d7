"""`TritonHealth`: each Triton's readiness as a background probe last saw it.

    ready         what `/health/triton` (and, with the cache, `/v2/health/ready`) answers
                  from, at once, whatever the Tritons do: ready while at least one Triton
                  is; `ready_count` Tritons, also in `gateway_triton_ready_endpoints`
    every probe   GET /v2/health/ready of each Triton with a short deadline, every
                  GATEWAY_TRITON_PROBE_S; TRIP_AFTER probes in a row without any answer
                  (refused, reset, past the deadline: that Triton is down or hung; a "not
                  ready" answer, as while a model reloads, is no outage) trip its breaker
                  and cut its inference calls in flight short, so a hung Triton holds no
                  request slots (cache hits keep being served) and new misses go to the
                  other Tritons or fail fast with 503; an answer closes the breaker again.
                  A Triton that answers also reports what it has READY and its queue, for
                  routing (`TritonClient.refresh`)
    every GATEWAY_TRITON_RESOLVE_S   DNS sources resolved again (`discovery.py`)

Inference calls feed the same breakers (consecutive transport failures open one), so a
dead Triton is noticed by whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from gateway.backends.triton.client import Readiness, TritonClient
from gateway.backends.triton.endpoint import Endpoint

logger = logging.getLogger(__name__)

TRIP_AFTER = 2  # failed probes in a row: one slow probe on a busy machine is no outage


class TritonHealth:
    """Keeps `ready` current and drives each Triton's breaker."""

    def __init__(
        self,
        client: TritonClient,
        interval_s: float,
        timeout_s: float,
        resolve_s: float = 10.0,
        on_probe: Callable[[int], None] | None = None,
    ) -> None:
        self._client = client
        self._on_probe = on_probe  # told how many Tritons are ready after each probe
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._resolve_s = resolve_s
        self._failures: dict[str, int] = {}  # probes in a row without an answer, per Triton
        self._task: asyncio.Task[None] | None = None
        self.ready = False
        self.ready_count = 0  # Tritons ready at the last probe

    async def start(self) -> None:
        """Find the Tritons and probe them once (so readiness is known before serving),
        then keep probing."""
        await self._client.discover()
        await self.probe()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="triton-health")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def probe(self) -> None:
        endpoints = list(self._client.endpoints)
        answers = await asyncio.gather(*(self._probe(endpoint) for endpoint in endpoints))
        self.ready_count = sum(answers)
        self.ready = self.ready_count > 0
        if self._on_probe is not None:
            self._on_probe(self.ready_count)

    async def _probe(self, endpoint: Endpoint) -> bool:
        readiness = await self._client.readiness(endpoint, self._timeout_s)
        endpoint.probe_ready = readiness is Readiness.READY
        failures = self._failures.get(endpoint.url, 0)
        if readiness is not Readiness.NO_ANSWER:
            if failures >= TRIP_AFTER:
                logger.info("Triton %s answers its health probe again", endpoint.url)
                self._client.recovered(endpoint)
            self._failures[endpoint.url] = 0
            await self._client.refresh(endpoint, self._timeout_s)
            return endpoint.probe_ready
        self._failures[endpoint.url] = failures + 1
        if failures + 1 == TRIP_AFTER:
            self._client.trip(
                endpoint, f"its health probe got no answer {TRIP_AFTER} times in a row"
            )
        return False

    async def _run(self) -> None:
        resolved = time.monotonic()
        while True:
            await asyncio.sleep(self._interval_s)
            if time.monotonic() - resolved >= self._resolve_s:
                resolved = time.monotonic()
                await self._client.discover()
            await self.probe()

"""The Triton client's own bounds, with the connection pool as the boundary."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import TritonBusy
from gateway.metrics import Metrics
from gateway.protocol import decode_infer_request
from gateway.triton import TritonClient
from gateway.triton.connections import Response


class SlowPool:
    """Stands in for the connection pool: every call waits until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> Response:
        await self.release.wait()
        raise ConnectionResetError("gone")

    def close(self) -> None:
        pass


def test_calls_beyond_the_in_flight_limit_are_busy_not_an_outage() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        client = TritonClient(
            "http://127.0.0.1:1",
            infer_timeout_s=30,
            control_timeout_s=1,
            retry_after_s=1,
            metrics=metrics,
            max_in_flight=2,
        )
        pool = SlowPool()
        client._pool = pool  # type: ignore[assignment]
        request = decode_infer_request(
            "m",
            "1",
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}',
            None,
        )
        waiting = [asyncio.create_task(client.infer(request)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(TritonBusy, match="2 requests"):
            await client.infer(request)
        assert not client.circuit_open
        assert metrics.degraded.labels("triton")._value.get() == 0  # not marked degraded
        pool.release.set()
        await asyncio.gather(*waiting, return_exceptions=True)
        await client.close()

    asyncio.run(scenario())

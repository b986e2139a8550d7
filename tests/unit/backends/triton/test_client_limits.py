"""The Triton client's own bounds, with the connection pool as the boundary."""

from __future__ import annotations

import asyncio

import pytest

from gateway.backends.triton import TritonClient
from gateway.backends.triton.connections import Response
from gateway.backends.triton.model_deadlines import ModelDeadlines
from gateway.errors import InferenceTimeout, TritonBusy, TritonUnavailable
from gateway.observability.metrics import Metrics
from gateway.protocol import decode_infer_request
from gateway.protocol.types import InferRequest


class SlowPool:
    """Stands in for the connection pool: every call waits until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> Response:
        await self.release.wait()
        raise ConnectionResetError("gone")

    def close(self) -> None:
        pass


def slow_client(metrics: Metrics, **options: int) -> tuple[TritonClient, SlowPool]:
    """A client of one Triton whose connections are a `SlowPool`."""
    client = TritonClient(
        "http://127.0.0.1:1",
        deadlines=ModelDeadlines(30, 2, 10),
        control_timeout_s=1,
        retry_after_s=1,
        metrics=metrics,
        **options,  # type: ignore[arg-type]
    )
    pool = SlowPool()
    client.endpoints[0].pool = pool  # type: ignore[assignment]
    return client, pool


def one_row() -> InferRequest:
    return decode_infer_request(
        "m",
        "1",
        b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}',
        None,
    )


def test_calls_beyond_the_in_flight_limit_are_busy_not_an_outage() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        client, pool = slow_client(metrics, max_in_flight=2)
        request = one_row()
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


def test_a_model_past_its_deadline_is_a_504_that_leaves_the_breaker_closed() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        client, _ = slow_client(metrics, breaker_failures=1)
        for _ in range(3):
            with pytest.raises(InferenceTimeout, match=r"model 'm' within its 0.05 s deadline"):
                await client.infer(one_row(), timeout_s=0.05)
        assert not client.circuit_open  # one slow model does not fail the others
        assert metrics.degraded.labels("triton")._value.get() == 0
        assert metrics.triton_errors.labels("m", "504")._value.get() == 3
        # A call cut short because Triton stopped answering is Triton's failure.
        waiting = asyncio.create_task(client.infer(one_row(), timeout_s=10))
        await asyncio.sleep(0.01)
        client.trip(client.endpoints[0], "no answer to its health probe")
        with pytest.raises(TritonUnavailable) as raised:
            await waiting
        assert not isinstance(raised.value, InferenceTimeout) and raised.value.status == 503
        await client.close()

    asyncio.run(scenario())

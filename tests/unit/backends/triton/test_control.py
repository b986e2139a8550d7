"""Triton's control calls, with Triton's HTTP answers at the boundary."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx

from gateway.backends.triton.control import TritonControl
from gateway.backends.triton.model_deadlines import ModelDeadlines


class RecordingHttp:
    def __init__(self) -> None:
        self.timeouts: list[Any] = []

    async def request(self, method: str, path: str, json: Any = None, timeout: Any = None) -> Any:
        self.timeouts.append(timeout)
        return httpx.Response(200, request=httpx.Request(method, f"http://triton{path}"))


def test_a_model_load_waits_for_the_load_timeout_not_an_inference_calls_ceiling() -> None:
    """On GPUs TensorRT builds engines while a model loads: minutes, not the 30 s an
    inference call may take (GATEWAY_TRITON_LOAD_TIMEOUT_S)."""
    http = RecordingHttp()
    triton = SimpleNamespace(http=http, probe_ready=True, breaker=SimpleNamespace(is_open=False))
    deadlines = ModelDeadlines(30, 2, 10)
    control = TritonControl(lambda: [triton], ["http://triton"], deadlines, 1, 1800)  # type: ignore[list-item]
    asyncio.run(control.load_model("m"))
    asyncio.run(control.unload_model("m"))
    assert http.timeouts == [1800, 1800]

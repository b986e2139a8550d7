"""Which async client should the gateway use to call Triton? Measure, don't guess.

    .venv/bin/python -m loadtests.investigations.triton_clients [--requests 4000]
        [--concurrency 1 16]

Starts an embedded Triton serving `tabular_classifier` (the smallest model) and sends the
same one-row request through each candidate, in this process, closed loop:
- httpx over HTTP/1.1 with binary tensor data;
- aiohttp over HTTP/1.1 with binary tensor data;
- the gateway's own `ConnectionPool` (asyncio + httptools) over HTTP/1.1 with binary tensor
  data: what the gateway uses;
- tritonclient.grpc.aio (the stock asyncio gRPC client);
- the raw gRPC stub from tritonclient's protocol modules (raw tensor bytes in and out, no
  per-request wrapper objects).
Prints a markdown table; "client CPU" is the CPU time this process spent per request (all
its threads, gRPC's poller included): what each call would cost the gateway. Absolute
numbers drift on shared machines; compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import httpx
import numpy as np
import tritonclient.grpc.aio as triton_grpc_aio
import uvloop
from tritonclient.grpc import service_pb2, service_pb2_grpc

from devstack import EmbeddedTriton
from gateway.backends.triton.connections import ConnectionPool
from loadtests.kit.stats import Summary, summarize

MODEL = "tabular_classifier"
ROW = np.linspace(0.0, 1.0, 30, dtype=np.float32).reshape(1, 30)


async def closed_loop(
    call: Callable[[], Awaitable[None]], requests: int, concurrency: int
) -> Summary:
    latencies: list[float] = []
    errors = 0

    async def worker(count: int) -> None:
        nonlocal errors
        for _ in range(count):
            started = time.perf_counter()
            try:
                await call()
            except Exception:  # noqa: BLE001 - a failed call is counted, not fatal
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    for _ in range(min(50, requests)):  # warm-up: connections, first batches
        await call()
    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    cpu = time.process_time() - cpu_started
    return summarize(latencies, errors, time.perf_counter() - started, cpu)


def binary_http_request() -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, 30],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": ROW.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    return header + ROW.tobytes(), headers


async def measure(
    triton: EmbeddedTriton, requests: int, levels: list[int]
) -> list[tuple[str, int, Summary]]:
    results: list[tuple[str, int, Summary]] = []
    body, headers = binary_http_request()
    path = f"/v2/models/{MODEL}/infer"

    async with httpx.AsyncClient(base_url=triton.endpoints.http_url) as client:

        async def via_httpx() -> None:
            response = await client.post(path, content=body, headers=headers)
            response.raise_for_status()

        results += [("httpx (HTTP)", c, await closed_loop(via_httpx, requests, c)) for c in levels]

    async with aiohttp.ClientSession(triton.endpoints.http_url) as session:

        async def via_aiohttp() -> None:
            async with session.post(path, data=body, headers=headers) as response:
                response.raise_for_status()
                await response.read()

        results += [
            ("aiohttp (HTTP)", c, await closed_loop(via_aiohttp, requests, c)) for c in levels
        ]

    address = httpx.URL(triton.endpoints.http_url)
    pool = ConnectionPool(address.host, address.port or 80, max_connections=256)

    async def via_pool() -> None:
        response = await pool.post(path, headers, body)
        if response.status != 200:
            raise RuntimeError(f"Triton answered {response.status}")

    results += [
        ("gateway ConnectionPool (HTTP)", c, await closed_loop(via_pool, requests, c))
        for c in levels
    ]
    pool.close()

    stock = triton_grpc_aio.InferenceServerClient(triton.endpoints.grpc_url)
    tensor = triton_grpc_aio.InferInput("features", [1, 30], "FP32")
    tensor.set_data_from_numpy(ROW)

    async def via_tritonclient() -> None:
        result = await stock.infer(MODEL, [tensor])
        result.as_numpy("probabilities")

    results += [
        ("tritonclient.grpc.aio", c, await closed_loop(via_tritonclient, requests, c))
        for c in levels
    ]
    await stock.close()

    channel = grpc.aio.insecure_channel(triton.endpoints.grpc_url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

    async def via_raw_stub() -> None:
        message = service_pb2.ModelInferRequest(model_name=MODEL)
        entry = message.inputs.add()
        entry.name, entry.datatype = "features", "FP32"
        entry.shape.extend([1, 30])
        message.raw_input_contents.append(ROW.tobytes())
        await stub.ModelInfer(message)

    results += [("raw gRPC stub", c, await closed_loop(via_raw_stub, requests, c)) for c in levels]
    await channel.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        triton = EmbeddedTriton(Path("model_repository"), Path(state), models=[MODEL])
        triton.start()
        try:
            results = uvloop.run(measure(triton, args.requests, args.concurrency))
        finally:
            triton.stop()
    print("| client | in flight | requests/s | p50 ms | p99 ms | client CPU µs/request | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, concurrency, summary in results:
        print(
            f"| {name} | {concurrency} | {summary.throughput:,.0f} | {summary.p50_ms:.2f} | "
            f"{summary.p99_ms:.2f} | {summary.cpu_us_per_request:.0f} | {summary.errors} |"
        )


if __name__ == "__main__":
    main()

"""Does Triton continue the caller's trace? Over gRPC and over HTTP, measured.

    .venv/bin/python -m loadtests.investigations.triton_trace_propagation [--requests 100]

Starts an OTLP/HTTP receiver and an embedded Triton tracing into it
(`--trace-config mode=opentelemetry`), sends the same inference with a fresh W3C
`traceparent` per request over each protocol, and counts how many of Triton's
`InferRequest` spans came back as children of the span named in the header.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from devstack import EmbeddedTriton
from devstack.triton import triton_trace_arguments
from loadtests.kit.otlp_sink import OtlpReceiver

MODEL = "tabular_classifier"
ROW = np.zeros((1, 30), np.float32)


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = f"{random.getrandbits(128):032x}", f"{random.getrandbits(64):016x}"
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


async def over_grpc(url: str, count: int) -> list[tuple[str, str]]:
    sent = []
    async with grpc.aio.insecure_channel(url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(count):
            trace_id, span_id, header = traceparent()
            request = service_pb2.ModelInferRequest(model_name=MODEL)
            tensor = request.inputs.add()
            tensor.name, tensor.datatype = "features", "FP32"
            tensor.shape.extend([1, 30])
            request.raw_input_contents.append(ROW.tobytes())
            await stub.ModelInfer(request, metadata=[("traceparent", header)])
            sent.append((trace_id, span_id))
    return sent


def over_http(url: str, count: int) -> list[tuple[str, str]]:
    sent = []
    body = {
        "inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}]
    }
    with httpx.Client(base_url=url) as client:
        for _ in range(count):
            trace_id, span_id, header = traceparent()
            client.post(f"/v2/models/{MODEL}/infer", json=body, headers={"traceparent": header})
            sent.append((trace_id, span_id))
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    with OtlpReceiver() as receiver, tempfile.TemporaryDirectory() as state:
        triton = EmbeddedTriton(
            Path("model_repository"),
            Path(state),
            models=[MODEL],
            extra_args=triton_trace_arguments(receiver.url),
        )
        triton.start()
        try:
            sent = {
                "gRPC": asyncio.run(over_grpc(triton.endpoints.grpc_url, args.requests)),
                "HTTP": over_http(triton.endpoints.http_url, args.requests),
            }
            time.sleep(8)  # Triton exports in batches
        finally:
            triton.stop()
        roots = {s.trace_id: s for s in receiver.spans if s.name == "InferRequest"}
    print("| protocol | requests | Triton span under the caller's span | new trace by Triton |")
    print("|---|---:|---:|---:|")
    for protocol, requests in sent.items():
        joined = sum(1 for t, s in requests if t in roots and roots[t].parent_span_id == s)
        print(f"| {protocol} | {len(requests)} | {joined} | {len(requests) - joined} |")


if __name__ == "__main__":
    main()

"""How fast a Python gRPC server can answer at all: a grpc.aio `GRPCInferenceService` whose
ModelInfer returns a fixed answer (no key, no cache, no Triton: nothing but grpcio), against
direct Triton gRPC and the gateway's gRPC cache hit, by the same load generator (h2load),
one process each. Writes docs/benchmarks/grpc-ceiling.md.

    .venv/bin/python -m loadtests.investigations.grpc_ceiling [--duration 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from auth import ApiKey
from devstack.ports import free_port, port_open
from loadtests.kit.h2load import run_grpc
from loadtests.kit.machine import machine
from loadtests.kit.processes import ROOT, backends, cpu_seconds, start_gateway
from loadtests.kit.targets import TRITON_MODELS, targets

CONNECTIONS = (1, 16)


class FixedAnswer(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """ModelInfer answered with the same response every time."""

    def __init__(self) -> None:
        response = service_pb2.ModelInferResponse(model_name="tabular_classifier")
        response.model_version = "1"
        for name, datatype, shape, data in (
            ("label", "INT64", [1, 1], np.array([[1]], np.int64)),
            ("probabilities", "FP32", [1, 2], np.array([[0.1, 0.9]], np.float32)),
        ):
            output = response.outputs.add()
            output.name, output.datatype = name, datatype
            output.shape.extend(shape)
            response.raw_output_contents.append(data.tobytes())
        self._response = response

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        return self._response


async def serve(port: int) -> None:
    server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(FixedAnswer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the fixed-answer server
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    key = str(ApiKey.generate())
    request = targets()[0].grpc
    runs: dict[tuple[str, int], list[tuple[float, float | None]]] = {}
    with tempfile.TemporaryDirectory() as folder, backends(Path(folder), TRITON_MODELS) as services:
        grpc_port = free_port()
        _, gateway = start_gateway("gateway", 1, Path(folder), services, key, {}, grpc_port)
        fixed_port = free_port()
        fixed = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadtests.investigations.grpc_ceiling",
                "--serve",
                str(fixed_port),
            ],
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 30  # h2load retries nothing: wait until it listens
            while not port_open("127.0.0.1", fixed_port):
                if time.monotonic() > deadline or fixed.poll() is not None:
                    raise SystemExit("the fixed-answer gRPC server did not start")
                time.sleep(0.1)
            systems: dict[str, tuple[str, list[str], int | None]] = {
                "direct Triton gRPC": (services[0].endpoints.grpc_url, [], None),
                "fixed-answer grpc.aio server (grpcio only)": (
                    f"127.0.0.1:{fixed_port}",
                    [],
                    fixed.pid,
                ),
                "gateway gRPC, cache hit": (
                    f"127.0.0.1:{grpc_port}",
                    [f"authorization: Bearer {key}"],
                    int(str(gateway.pid)),
                ),
            }
            for address, metadata, _ in systems.values():  # warm up (and fill the cache)
                run_grpc(address, request, connections=1, duration_s=1, metadata=metadata)
            for _ in range(args.rounds):
                for connections in CONNECTIONS:
                    for name, (address, metadata, pid) in systems.items():
                        cpu, started = (cpu_seconds(pid) if pid else 0.0), time.monotonic()
                        result = run_grpc(
                            address,
                            request,
                            connections=connections,
                            duration_s=args.duration,
                            metadata=metadata,
                        )
                        per_request = None
                        if pid and result.requests_per_s:
                            cores = (cpu_seconds(pid) - cpu) / (time.monotonic() - started)
                            per_request = cores / result.requests_per_s * 1e6
                        runs.setdefault((name, connections), []).append(
                            (result.requests_per_s, per_request)
                        )
        finally:
            fixed.terminate()
            fixed.wait(10)
    report = render(runs, args.duration, args.rounds)
    (args.output / "grpc-ceiling.md").write_text(report)
    print(report)


def render(
    runs: dict[tuple[str, int], list[tuple[float, float | None]]], duration_s: float, rounds: int
) -> str:
    facts = machine()
    lines = [
        "# The ceiling of a Python gRPC server",
        "",
        f"`.venv/bin/python -m loadtests.investigations.grpc_ceiling --duration {duration_s:g} "
        "--rounds "
        f"{rounds}`, {facts['date']}. Machine: {facts['cpu']}, {facts['cores']} cores shared by "
        "everything. h2load, tabular_classifier v1's request; median of the rounds.",
        "",
        "| server | connections | requests/s | vs direct Triton gRPC | server CPU µs/request |",
        "|---|---:|---:|---:|---:|",
    ]
    for connections in CONNECTIONS:
        base = statistics.median(r for r, _ in runs[("direct Triton gRPC", connections)])
        for (name, c), measured in runs.items():
            if c != connections:
                continue
            rate = statistics.median(r for r, _ in measured)
            cpus = [cpu for _, cpu in measured if cpu is not None]
            cpu = f"{statistics.median(cpus):,.0f}" if cpus else "-"
            lines.append(f"| {name} | {c} | {rate:,.0f} | {rate / base:.2f}x | {cpu} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Benchmark of the result cache: direct Triton, gateway miss, gateway hit, in one run.

    .venv/bin/python -m loadtests.investigations.cache_bench [--duration 10] [--connections 16]
                                              [--profile DIR]

Starts an embedded Redis and Triton (serving `tabular_classifier`, the smallest model)
and one gateway worker (`gateway serve`, its own process), then measures with one load
generator (wrk, 1 thread, closed loop, the same JSON request shape throughout):
  1. Triton's own HTTP endpoint, the same request every time (Triton computes each one);
  2. the gateway, every request unique (every one a cache miss that goes to Triton);
  3. the gateway, the same request every time (cache hits after the first);
  4. 2 and 3 against gateways that trace every request, and one request in ten
     (parent-based ratio sampler), exporting spans over OTLP/HTTP to a local endpoint that
     discards them;
each with `--connections` in flight, then with one (without tracing). Prints throughput,
p50, p99, errors, and the throughput ratio and p50 difference to direct Triton at the same
concurrency, and what tracing costs.
With `--profile`, py-spy records the gateway during each gateway run (flame graphs in DIR;
BENCH_PROFILE_FORMAT=.txt writes collapsed stacks instead).
Absolute numbers drift on shared machines; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from auth import ApiKey
from devstack import EmbeddedTriton, ManagedProcess
from loadtests.kit import processes
from loadtests.kit.otlp_sink import OtlpSink
from loadtests.kit.wrk import WrkResult, post_script, require_wrk, run_wrk, unique_post_script

MODEL = "tabular_classifier"
PROFILE_SUFFIX = os.environ.get("BENCH_PROFILE_FORMAT", ".svg")  # ".txt": collapsed stacks
FEATURES = [round(0.1 * i, 1) for i in range(30)]


@dataclass(frozen=True)
class Stack:
    triton_url: str
    gateway_url: str
    gateway_pid: int
    traced_url: str
    sampled_url: str
    key: str


def request_body(features: list[float]) -> str:
    data = ", ".join(str(v) for v in features)
    tensor = f'"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [{data}]'
    return f'{{"inputs": [{{{tensor}}}]}}'


def start_gateway(
    state: Path,
    services: tuple[EmbeddedTriton, str],
    key: str,
    otlp_endpoint: str | None = None,
    sampling: float = 1.0,
) -> tuple[ManagedProcess, str]:
    """One gateway worker; with `otlp_endpoint`, tracing `sampling` of requests (parent
    based) and exporting the spans over OTLP/HTTP. Access lines included: what production
    pays for them."""
    name, tracing = "gateway", {}
    if otlp_endpoint is not None:
        name = f"gateway-traced-{sampling:g}"
        tracing = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": str(sampling),
        }
    url, process = processes.start_gateway(name, 1, state, services, key, tracing)
    return process, url


def profile(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw" if output.suffix == ".txt" else "flamegraph",
            "--output",
            str(output),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(
    stack: Stack, duration_s: float, connections: int, profile_dir: Path | None
) -> dict[str, WrkResult]:
    auth = {"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"}
    body = request_body(FEATURES)
    path = f"/v2/models/{MODEL}/infer"
    httpx.delete(f"{stack.gateway_url}/admin/cache", headers=auth)
    for _ in range(20):  # warm-up: connections, the catalog, the first batches
        httpx.post(stack.triton_url + path, content=body)
        httpx.post(stack.gateway_url + path, content=body, headers=auth)
        httpx.post(stack.traced_url + path, content=body, headers=auth)
        httpx.post(stack.sampled_url + path, content=body, headers=auth)
    prefix = body[: body.index("[0.0,") + 1]
    suffix = body[body.index(", 0.2,") :]
    direct = post_script(body, {"Content-Type": "application/json"})
    hit = post_script(body, auth)

    def miss() -> str:
        return unique_post_script(prefix, suffix, auth, run_id=random.randrange(1, 16_000_000))

    scenarios = [
        ("direct Triton (HTTP)", connections, stack.triton_url, direct),
        ("gateway, cache miss", connections, stack.gateway_url, miss()),
        ("gateway, cache hit", connections, stack.gateway_url, hit),
        ("gateway, cache miss, tracing 100%", connections, stack.traced_url, miss()),
        ("gateway, cache hit, tracing 100%", connections, stack.traced_url, hit),
        ("gateway, cache miss, tracing 10%", connections, stack.sampled_url, miss()),
        ("gateway, cache hit, tracing 10%", connections, stack.sampled_url, hit),
        ("direct Triton (HTTP)", 1, stack.triton_url, direct),
        ("gateway, cache miss", 1, stack.gateway_url, miss()),
        ("gateway, cache hit", 1, stack.gateway_url, hit),
    ]
    results = {}
    for name, clients, base_url, lua in scenarios:
        recorder = None
        if profile_dir is not None and name.startswith("gateway") and clients > 1:
            output = profile_dir / (name.replace(", ", "-").replace(" ", "-") + PROFILE_SUFFIX)
            recorder = profile(stack.gateway_pid, duration_s - 1, output)
        label = f"{name}, {clients} connection{'s' if clients > 1 else ''}"
        results[label] = run_wrk(base_url + path, lua, connections=clients, duration_s=duration_s)
        if recorder is not None:
            recorder.wait(30)
        time.sleep(1)
    return results


def report(results: dict[str, WrkResult], connections: int, duration_s: float) -> str:
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}; wrk 1 thread, {connections} connections, "
        f"{duration_s:g} s per scenario, model {MODEL}",
        "",
        "| scenario | requests/s | p50 ms | p99 ms | errors | throughput vs direct Triton "
        "| p50 added to direct Triton |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        clients = name.rsplit(", ", 1)[1]
        base = results[f"direct Triton (HTTP), {clients}"]
        lines.append(
            f"| {name} | {result.requests_per_s:,.0f} | {result.p50_ms:.2f} | "
            f"{result.p99_ms:.2f} | {result.errors} | "
            f"{result.requests_per_s / base.requests_per_s:.2f}x | "
            f"{result.p50_ms - base.p50_ms:+.2f} ms |"
        )
    lines += ["", "| tracing (OTLP/HTTP export), sampled | throughput vs tracing off |"]
    lines.append("|---|---:|")
    for name, result in results.items():
        if ", tracing " in name:
            scenario, sampled = name.split(", tracing ")
            plain = results[scenario + ", " + sampled.split(", ")[1]]
            change = result.requests_per_s / plain.requests_per_s - 1
            lines.append(f"| {scenario}, {sampled} | {change:+.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--profile", type=Path, help="write py-spy flame graphs here")
    args = parser.parse_args()
    require_wrk()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    key = str(ApiKey.generate())
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        gateways: list[ManagedProcess] = []
        with processes.backends(state, [MODEL]) as services, OtlpSink() as sink:
            try:
                gateway, url = start_gateway(state, services, key)
                gateways.append(gateway)
                traced, traced_url = start_gateway(state, services, key, sink.endpoint)
                gateways.append(traced)
                sampled, sampled_url = start_gateway(
                    state, services, key, sink.endpoint, sampling=0.1
                )
                gateways.append(sampled)
                triton_url = services[0].endpoints.http_url
                stack = Stack(triton_url, url, gateway.pid or 0, traced_url, sampled_url, key)
                results = measure(stack, args.duration, args.connections, args.profile)
            finally:
                for process in gateways:
                    process.stop()
    print(report(results, args.connections, args.duration))


if __name__ == "__main__":
    main()

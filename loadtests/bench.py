"""`make bench`: the gateway against direct Triton and the alternatives, in one run.

    .venv/bin/python -m loadtests bench [--duration 3] [--rounds 3] [--output docs/benchmarks]
                                        [--no-bentoml]

On three models (the smallest: `tabular_classifier` v1, logistic regression;
`tabular_classifier` v2, gradient-boosted trees; `text_embedding`, MiniLM), each at 1 and
at 16 connections, closed loop, each row the median of `--rounds` runs with the systems
interleaved run by run (so that the machine's drift hits them alike):

    direct Triton, HTTP (JSON)            wrk
    direct Triton, gRPC                   h2load (wrk speaks no HTTP/2; mean latency only)
    gateway, cache miss (unique inputs)   wrk, 1 worker
    gateway, cache hit                    wrk, 1 worker
    gateway, 2 workers: miss and hit     wrk
    FastAPI + ONNX Runtime in-process     wrk (the usual hand-written service)
    BentoML serving the same ONNX files   wrk (its own venv, .venv-bentoml)

then an open-loop overload test (fixed arrival rates at 0.5x, 1x and 2x the measured miss
saturation of `text_embedding`), py-spy profiles of the gateway's hit and miss paths, and
the span durations of misses at one connection (a gateway that traces every request). It writes
`README.md` (tables, the targets met or missed, the machine), `bench.png` and
`results.json` to --output. Absolute numbers drift on shared machines: compare the ratios
of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from auth import ApiKey
from devstack import EmbeddedTriton, ManagedProcess
from devstack.ports import free_port
from loadtests.kit.h2load import run_grpc
from loadtests.kit.machine import machine
from loadtests.kit.openloop import OpenLoopResult, open_loop
from loadtests.kit.otlp_sink import OtlpReceiver, ReceivedSpan
from loadtests.kit.processes import ROOT, backends, cpu_seconds, start, start_gateway
from loadtests.kit.runs import Run, median_of, run_wrk_watching
from loadtests.kit.targets import TRITON_MODELS, Target, targets
from loadtests.kit.wrk import post_script, require_wrk, run_wrk, unique_post_script

CACHE_DETAILS = ("gateway.cache.tier", "gateway.cache.entry")  # tell cache spans apart
CONCURRENCY = (1, 16)


@dataclass
class Row:
    model: str
    system: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    vs_triton: float = 0.0
    gateway_cpu_us: float | None = None  # CPU the gateway's processes used per request


def bentoml_python(recreate: bool = False) -> Path | None:
    """The Python of a venv with BentoML (created on first use); None if it cannot be made."""
    venv = ROOT / ".venv-bentoml"
    python = venv / "bin" / "python"
    if python.exists() and not recreate:
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--require-hashes",
                "--no-deps",
                "-r",
                str(ROOT / "requirements" / "bentoml.txt"),
            ],
            check=True,
        )
    except subprocess.CalledProcessError:
        return None
    return python


@contextlib.contextmanager
def systems(
    state: Path, key: str, with_bentoml: bool, otlp_endpoint: str
) -> Iterator[dict[str, str]]:
    """Start every system; yield their base URLs (and Triton's gRPC address).

    Besides the gateways under test, one more gateway traces every request and exports
    its spans to `otlp_endpoint` (a receiver that keeps them): where a miss's time
    goes."""
    processes: list[ManagedProcess] = []
    with backends(state, TRITON_MODELS) as services:
        try:
            yield _start_systems(state, key, with_bentoml, otlp_endpoint, services, processes)
        finally:
            for process in reversed(processes):
                process.stop()


def _start_systems(
    state: Path,
    key: str,
    with_bentoml: bool,
    otlp_endpoint: str,
    services: tuple[EmbeddedTriton, str],
    processes: list[ManagedProcess],
) -> dict[str, str]:
    triton = services[0]
    urls = {"triton": triton.endpoints.http_url, "grpc": triton.endpoints.grpc_url}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))}
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "GATEWAY_TRACE_SPANS": "detailed",  # a span per stage: where a miss's time goes
    }
    gateways: tuple[tuple[str, int, dict[str, str]], ...] = (
        ("gateway", 1, {}),
        ("gateway-2-workers", 2, {}),
        ("gateway-traced", 1, tracing),
    )
    for name, workers, extra_env in gateways:
        grpc_port = free_port()
        url, process = start_gateway(name, workers, state, services, key, extra_env, grpc_port)
        processes.append(process)
        urls[name] = url
        urls[f"{name}-pid"] = str(process.pid)
        urls[f"{name}-grpc"] = f"127.0.0.1:{grpc_port}"
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "loadtests.alternatives.fastapi_onnx:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    processes.append(
        start(
            "fastapi-onnx",
            argv,
            state,
            {**base_env, "PYTHONPATH": str(ROOT)},
            f"http://127.0.0.1:{port}/docs",
        )
    )
    urls["fastapi"] = f"http://127.0.0.1:{port}"
    python = bentoml_python() if with_bentoml else None
    if python is not None:
        port = free_port()
        argv = [
            str(python),
            "-m",
            "bentoml",
            "serve",
            "loadtests.alternatives.bentoml_service:Models",
            "--port",
            str(port),
        ]
        env = {**base_env, "PYTHONPATH": str(ROOT), "BENTOML_DO_NOT_TRACK": "true"}
        processes.append(start("bentoml", argv, state, env, f"http://127.0.0.1:{port}/readyz"))
        urls["bentoml"] = f"http://127.0.0.1:{port}"
    return urls


def plan(target: Target, urls: dict[str, str], key: str) -> list[tuple[str, str, str, int | None]]:
    """(system, URL, wrk script, the gateway's pid or None) of each HTTP row for `target`."""
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    plain = {"Content-Type": "application/json"}

    def unique(parts: tuple[str, str], headers: dict[str, str]) -> str:
        return unique_post_script(*parts, headers, run_id=random.randrange(1, 16_000_000))

    one, two = urls["gateway"] + target.triton_path, urls["gateway-2-workers"] + target.triton_path
    one_pid, two_pid = int(urls["gateway-pid"]), int(urls["gateway-2-workers-pid"])
    hit = post_script(target.body, auth)
    rows = [
        (
            "direct Triton, HTTP",
            urls["triton"] + target.triton_path,
            post_script(target.body, plain),
            None,
        ),
        ("gateway, cache miss", one, unique(target.unique, auth), one_pid),
        ("gateway, cache hit", one, hit, one_pid),
        ("gateway 2 workers, cache miss", two, unique(target.unique, auth), two_pid),
        ("gateway 2 workers, cache hit", two, hit, two_pid),
        (
            "FastAPI + ONNX Runtime",
            f"{urls['fastapi']}/v2/models/{target.alternative}/infer",
            unique(target.unique, plain),
            None,
        ),
    ]
    if "bentoml" in urls:
        bento = urls["bentoml"] + target.bentoml_path
        rows.append(("BentoML", bento, unique(target.bentoml_unique, plain), None))
    return rows


def measure(urls: dict[str, str], key: str, duration_s: float, rounds: int) -> list[Row]:
    """Every row `rounds` times, the systems of one model and concurrency interleaved, so
    that the machine's drift hits all of them alike; each row keeps its median run."""
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    rows: list[Row] = []
    for target in targets():
        for url in (urls["gateway"], urls["gateway-2-workers"]):  # warm the hit path
            for _ in range(20):
                httpx.post(url + target.triton_path, content=target.body, headers=auth, timeout=60)
        for connections in CONCURRENCY:
            runs: dict[str, list[Run]] = {}
            for _ in range(rounds):
                for system, run in one_round(target, urls, key, connections, duration_s):
                    runs.setdefault(system, []).append(run)
            medians = {system: median_of(system_runs) for system, system_runs in runs.items()}
            base = medians["direct Triton, HTTP"].wrk.requests_per_s
            for system, run in medians.items():
                result = run.wrk
                rows.append(
                    Row(
                        target.name,
                        system,
                        connections,
                        result.requests_per_s,
                        result.p50_ms,
                        result.p99_ms,
                        result.errors,
                        result.requests_per_s / base,
                        run.cpu_us_per_request,
                    )
                )
                print(
                    f"{target.name[:24]:24} {system:36} c={connections:<3} "
                    f"{result.requests_per_s:9,.0f} req/s",
                    flush=True,
                )
    return rows


def one_round(
    target: Target, urls: dict[str, str], key: str, connections: int, duration_s: float
) -> Iterator[tuple[str, Run]]:
    """One run of each system on `target` (fresh unique inputs, so misses stay misses)."""
    http_rows = plan(target, urls, key)
    system, url, script, _ = http_rows[0]
    yield system, Run(run_wrk(url, script, connections=connections, duration_s=duration_s))
    grpc = run_grpc(urls["grpc"], target.grpc, connections=connections, duration_s=duration_s)
    yield "direct Triton, gRPC (h2load, mean)", Run(grpc)
    # The gateway's gRPC front, by the same load generator: the one request over and over
    # is a cache hit; with `cache-control: no-cache` each goes to Triton (the miss path).
    auth = f"authorization: Bearer {key}"
    for system, headers in (
        ("gateway gRPC, cache hit (h2load, mean)", [auth]),
        (
            "gateway gRPC, no-cache: Triton each time (h2load, mean)",
            [auth, "cache-control: no-cache"],
        ),
    ):
        time.sleep(0.2)
        gateway = int(urls["gateway-pid"])
        cpu, started = cpu_seconds(gateway), time.monotonic()
        result = run_grpc(
            urls["gateway-grpc"],
            target.grpc,
            connections=connections,
            duration_s=duration_s,
            metadata=headers,
        )
        yield system, Run(result, (cpu_seconds(gateway) - cpu) / (time.monotonic() - started))
    for system, url, script, pid in http_rows[1:]:
        time.sleep(0.2)
        yield system, run_wrk_watching(url, script, connections, duration_s, pid)


def overload(urls: dict[str, str], key: str, rows: list[Row]) -> list[tuple[str, OpenLoopResult]]:
    """Open loop at 0.5x, 1x and 2x the gateway's measured miss saturation, text_embedding."""
    saturation = next(
        r.requests_per_s
        for r in rows
        if r.model.startswith("text_embedding")
        and r.system == "gateway, cache miss"
        and r.connections == 16
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = urls["gateway"] + "/v2/models/text_embedding/infer"
    run = random.randrange(1_000_000)

    def body(n: int) -> bytes:
        return json.dumps(
            {
                "inputs": [
                    {
                        "name": "text",
                        "shape": [1, 1],
                        "datatype": "BYTES",
                        "data": [f"overload {run} {n}"],
                    }
                ]
            }
        ).encode()

    results = []
    for factor in (0.5, 1.0, 2.0):
        result = open_loop(url, body, headers, rate=max(5.0, saturation * factor), seconds=10)
        results.append((f"{factor:g}x saturation ({saturation * factor:,.0f} req/s)", result))
        time.sleep(2)
    return results


def profile_gateway(pid: str, url: str, script: str, raw: Path) -> list[tuple[str, float]]:
    """py-spy on a 1-worker gateway while wrk sends `script` with 16 connections; the
    functions holding the GIL most often (self time), with their share of the samples."""
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            pid,  # one worker: uvicorn serves in the process it was started as
            "--duration",
            "5",
            "--rate",
            "250",
            "--format",
            "raw",
            "--gil",
            "--nonblocking",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_wrk(url, script, connections=16, duration_s=6)
    spy.wait(30)
    totals: dict[str, int] = {}
    count = 0
    with contextlib.suppress(FileNotFoundError):
        for line in raw.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            count += int(n)
            leaf = stack.split(";")[-1]  # self time: the function running when sampled
            totals[leaf] = totals.get(leaf, 0) + int(n)
    ranked = sorted(((f, v / count) for f, v in totals.items()), key=lambda x: -x[1])
    return ranked[:15] if count else []


def profiles(urls: dict[str, str], key: str, output: Path) -> dict[str, list[tuple[str, float]]]:
    """Profiles of the hit path and of the miss path, smallest model."""
    target = targets()[0]
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = urls["gateway"] + target.triton_path
    return {
        requests: profile_gateway(
            urls["gateway-pid"],
            url,
            target.wrk_script(requests, auth),
            output / f"{requests}-profile.txt",
        )
        for requests in ("hit", "miss")
    }


@dataclass
class Stage:
    span: str
    per_request: float
    p50_ms: float
    mean_ms: float


def miss_stages(
    urls: dict[str, str], key: str, receiver: OtlpReceiver, duration_s: float
) -> list[Stage]:
    """Span durations of cache misses, smallest model, 1 connection, a gateway tracing all."""
    target = targets()[0]
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = urls["gateway-traced"] + target.triton_path
    for _ in range(20):
        httpx.post(url, content=target.body, headers=auth, timeout=60)
    time.sleep(1)
    receiver.clear()
    run_wrk(url, target.wrk_script("miss", auth), connections=1, duration_s=duration_s)
    time.sleep(2)  # the last batch of spans
    durations: dict[str, list[float]] = {}
    for span in receiver.received():
        durations.setdefault(stage_label(span), []).append(span.duration_ms)
    server = [v for name, v in durations.items() if name.startswith("POST ")]
    requests = max(1, sum(len(v) for v in server))  # one server span per request
    stages = [
        Stage(name, len(values) / requests, float(np.median(values)), float(np.mean(values)))
        for name, values in durations.items()
    ]
    return sorted(stages, key=lambda s: -s.mean_ms * s.per_request)


def stage_label(span: ReceivedSpan) -> str:
    """The span's name, and the cache tier and entry where it has them."""
    details = [str(span.attributes[k]) for k in CACHE_DETAILS if k in span.attributes]
    return f"{span.name} ({', '.join(details)})" if details else span.name


def chart(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    models = list(dict.fromkeys(r.model for r in rows))
    system_names = list(dict.fromkeys(r.system for r in rows))
    figure, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 5.5))
    for axis, model in zip(np.atleast_1d(axes), models, strict=True):
        values = [
            next(
                (
                    r.requests_per_s
                    for r in rows
                    if r.model == model and r.system == s and r.connections == 16
                ),
                0,
            )
            for s in system_names
        ]
        axis.barh(
            system_names,
            values,
            color=[
                "#888" if "direct" in s else "#2a7" if "gateway" in s else "#c63"
                for s in system_names
            ],
        )
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_title(f"{model}\n16 connections", fontsize=9)
        axis.set_xlabel("requests/s (log)")
        axis.invert_yaxis()
        axis.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def verdicts(rows: list[Row]) -> list[tuple[str, str, bool]]:
    def get(model: str, system: str, connections: int) -> Row:
        return next(
            r
            for r in rows
            if r.model.startswith(model) and r.system == system and r.connections == connections
        )

    small_hit = get("smallest", "gateway, cache hit", 16)
    small_hit_2 = get("smallest", "gateway 2 workers, cache hit", 16)
    text_hit = get("text_embedding", "gateway, cache hit", 16)
    miss_1 = get("smallest", "gateway, cache miss", 1)
    direct_1 = get("smallest", "direct Triton, HTTP", 1)
    one, two = small_hit.requests_per_s, small_hit_2.requests_per_s
    miss_text = get("text_embedding", "gateway, cache miss", 16).requests_per_s
    alternatives = [
        r
        for r in rows
        if r.model.startswith("text_embedding")
        and r.connections == 16
        and r.system in ("FastAPI + ONNX Runtime", "BentoML")
    ]
    best = max(alternatives, key=lambda r: r.requests_per_s)
    grpc_hit = get("smallest", "gateway gRPC, cache hit (h2load, mean)", 16).requests_per_s
    grpc_direct = get("smallest", "direct Triton, gRPC (h2load, mean)", 16).requests_per_s
    return [
        (
            "gateway gRPC hit ≥ 1.0x direct Triton gRPC, smallest model",
            f"{grpc_hit / grpc_direct:.2f}x",
            grpc_hit >= grpc_direct,
        ),
        (
            "gateway hit ≥ 1.0x direct Triton, smallest model",
            f"{small_hit.vs_triton:.2f}x",
            small_hit.vs_triton >= 1.0,
        ),
        (
            "gateway 2 workers hit ≥ 1.5x direct Triton, smallest model",
            f"{small_hit_2.vs_triton:.2f}x",
            small_hit_2.vs_triton >= 1.5,
        ),
        (
            "gateway hit ≥ 10x direct Triton, text_embedding",
            f"{text_hit.vs_triton:.1f}x",
            text_hit.vs_triton >= 10,
        ),
        (
            "gateway miss adds ≤ 1 ms p50 at concurrency 1, smallest model",
            f"{miss_1.p50_ms - direct_1.p50_ms:+.2f} ms",
            miss_1.p50_ms - direct_1.p50_ms <= 1.0,
        ),
        ("2 workers ≥ 1.6x one worker, hit path", f"{two / one:.2f}x", two / one >= 1.6),
        (
            f"gateway miss ≥ best alternative ({best.system}), text_embedding",
            f"{miss_text:,.0f} vs {best.requests_per_s:,.0f} req/s",
            miss_text >= best.requests_per_s,
        ),
    ]


def report(
    rows: list[Row],
    overloads: list[tuple[str, OpenLoopResult]],
    hot: dict[str, list[tuple[str, float]]],
    stages: list[Stage],
    facts: dict[str, str],
    duration_s: float,
    rounds: int,
) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"`.venv/bin/python -m loadtests bench --duration {duration_s:g} --rounds {rounds}` "
        f"(what `make bench` runs), {facts['date']}.",
        f"Machine: {facts['cores']} cores ({facts['cpu']}), {facts['platform']}, "
        f"Python {facts['python']};",
        f"Triton {facts['triton']}; "
        + ", ".join(
            f"{k} {v}"
            for k, v in facts.items()
            if k not in ("date", "cores", "cpu", "platform", "python", "triton")
        )
        + ".",
        "Everything (Triton, Redis, the gateways, the alternatives, the load generator) "
        f"shares the same {facts['cores']} cores: compare ratios, not absolute numbers.",
        "Load: wrk (1 thread) closed loop with 1 and 16 connections; each row is the median "
        f"of {rounds} runs of {duration_s:g} s, the rows of a table interleaved run by run; "
        "gRPC rows by h2load (mean latency in the p50 column, no p99). "
        "Cache misses and the alternatives get a unique input per request; hits repeat one. "
        "Every gateway logs an access line per request and keeps its metrics; tracing is off "
        "(what it costs: tracing.md, by loadtests/tracing_cost.py, which make bench runs next).",
        "",
        "## Targets",
        "",
        "Judged on this run alone. On this machine a row still moves by 10-15% from one "
        "run to the next, so a ratio within that of its target can land either side.",
        "",
        "| target | measured | |",
        "|---|---:|---|",
    ]
    for name, measured, ok in verdicts(rows):
        lines.append(f"| {name} | {measured} | {'met' if ok else '**missed**'} |")
    lines += worker_cpu_lines(rows, facts["cores"])
    for model in dict.fromkeys(r.model for r in rows):
        lines += [
            "",
            f"## {model}",
            "",
            "| system | connections | requests/s | p50 ms | p99 ms | errors "
            "| vs direct Triton HTTP | gateway CPU µs/request |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            if r.model == model:
                p99 = "-" if r.p99_ms != r.p99_ms else f"{r.p99_ms:.2f}"
                cpu = "-" if r.gateway_cpu_us is None else f"{r.gateway_cpu_us:,.0f}"
                lines.append(
                    f"| {r.system} | {r.connections} | {r.requests_per_s:,.0f} | "
                    f"{r.p50_ms:.2f} | {p99} | {r.errors} | {r.vs_triton:.2f}x | {cpu} |"
                )
    lines += [
        "",
        "## Overload (open loop, text_embedding, unique inputs, one gateway worker)",
        "",
        "| arrival rate | goodput (200/s) | shed (503/429) | with Retry-After "
        "| admitted p99 ms | other failures |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, result in overloads:
        other = sum(n for status, n in result.statuses.items() if status not in (200, 429, 503))
        lines.append(
            f"| {label} | {result.goodput:,.0f} | {result.shed} | {result.retry_after_seen} | "
            f"{result.admitted_p99_ms():.0f} | {other} |"
        )
    lines += miss_stage_section(rows, stages)
    for path, ranked in hot.items():
        if ranked:
            lines += [
                "",
                f"## Where a cache {path}'s CPU goes (smallest model, 16 connections; py-spy "
                "self time with the GIL held, `{path}-profile.txt` has the stacks)".replace(
                    "{path}", path
                ),
                "",
                "| share of samples | function |",
                "|---:|---|",
            ]
            lines += [f"| {share:.0%} | `{frame}` |" for frame, share in ranked]
    lines += ["", "![throughput at 16 connections](bench.png)", ""]
    return "\n".join(lines)


def worker_cpu_lines(rows: list[Row], cores: str) -> list[str]:
    """What the 2-worker target ran into: the CPU the gateway used, 1 worker against 2."""

    def hit(system: str, connections: int) -> tuple[float, float]:
        row = next(
            r
            for r in rows
            if r.model.startswith("smallest")
            and r.system == system
            and r.connections == connections
        )
        us = row.gateway_cpu_us or float("nan")
        return us * row.requests_per_s / 1e6, us

    one, two = hit("gateway, cache hit", 16), hit("gateway 2 workers, cache hit", 16)
    one_1, two_1 = hit("gateway, cache hit", 1), hit("gateway 2 workers, cache hit", 1)
    return [
        "",
        "Workers, cache hits on the smallest model, 16 connections: 1 worker used "
        f"{one[0]:.2f} cores at {one[1]:.0f} µs of CPU per request; 2 workers used "
        f"{two[0]:.2f} cores at {two[1]:.0f} µs per request, of the machine's {cores} "
        "(wrk had most of the rest). At 1 connection, where one worker at a time is busy, "
        "a request cost "
        f"{one_1[1]:.0f} µs with 1 worker and {two_1[1]:.0f} µs with 2 "
        "(`loadtests/investigations/workers_bench.py` adds how the connections fell on the "
        "workers).",
    ]


def miss_stage_section(rows: list[Row], stages: list[Stage]) -> list[str]:
    if not stages:
        return []
    direct = next(
        r
        for r in rows
        if r.model.startswith("smallest")
        and r.system == "direct Triton, HTTP"
        and r.connections == 1
    )
    lines = [
        "",
        "## Where a cache miss's time goes (smallest model, 1 connection)",
        "",
        "Spans of a gateway that traces every request (so a little slower than the gateway "
        "above), one connection, every request a miss. "
        f"For comparison, direct Triton's p50 round trip (wrk, above): {direct.p50_ms:.2f} ms. "
        "`cache.store` is written behind the answer: it runs from the answer to the end of "
        "the background Redis write, overlapping the next request, and is not part of the "
        "request's latency.",
        "",
        "| span | per request | p50 ms | mean ms |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| `{s.span}` | {s.per_request:.2f} | {s.p50_ms:.3f} | {s.mean_ms:.3f} |" for s in stages
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per row; the median is kept")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--no-bentoml", action="store_true")
    args = parser.parse_args()
    require_wrk()
    args.output.mkdir(parents=True, exist_ok=True)
    key = str(ApiKey.generate())
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as folder,
        OtlpReceiver() as receiver,
        systems(Path(folder), key, not args.no_bentoml, receiver.endpoint) as urls,
    ):
        rows = measure(urls, key, args.duration, args.rounds)
        overloads = overload(urls, key, rows)
        hot = profiles(urls, key, args.output)
        stages = miss_stages(urls, key, receiver, args.duration * args.rounds)
    facts = machine()
    (args.output / "README.md").write_text(
        report(rows, overloads, hot, stages, facts, args.duration, args.rounds)
    )
    (args.output / "results.json").write_text(
        json.dumps(
            {
                "machine": facts,
                "rows": [asdict(r) for r in rows],
                "miss_stages": [asdict(stage) for stage in stages],
                "overload": [
                    {
                        "label": label,
                        "goodput": r.goodput,
                        "shed": r.shed,
                        "statuses": dict(r.statuses),
                        "admitted_p99_ms": r.admitted_p99_ms(),
                    }
                    for label, r in overloads
                ],
            },
            indent=2,
        )
    )
    chart(rows, args.output / "bench.png")
    print(f"done in {time.monotonic() - started:.0f} s: {args.output / 'README.md'}")


if __name__ == "__main__":
    main()

"""The hit ratio around a promote: a Zipf workload, with and without the cache warm-up.

    .venv/bin/python -m loadtests promote [--rate 150] [--before 60] [--after 60]
                                          [--pool 5000] [--zipf 1.1] [--output docs/benchmarks]

For each of "warm-up on" and "warm-up off" (GATEWAY_CACHE_WARMUP_REQUESTS=0), on fresh
Triton, Redis and gateway (one worker): unversioned `tabular_classifier` requests at a fixed
arrival rate (open loop), inputs drawn Zipf-like from a pool, with version 1 serving; after
`--before` seconds (a steady hit ratio), `promote` moves all traffic to version 2; then
`--after` seconds more. It reports the hit ratio before, then per 10 s after the promote,
and the Triton inferences of version 2 over the `--after` seconds. The goal: with the
warm-up, the hit ratio over the minute after the promote stays at >= 80 % of the ratio
before it. It writes `promote-warm-up.md` to `--output`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import orjson

from auth import ApiKey
from loadtests.kit.machine import machine
from loadtests.kit.processes import ROOT, backends, start_gateway

MODEL = "tabular_classifier"
GOAL = 0.8
BUCKET_S = 10


@dataclass
class Run:
    warm_up: bool
    before: float = 0.0  # hit ratio over the second half of the time before the promote
    buckets: list[float] = field(default_factory=list)  # hit ratio per 10 s after
    after: float = 0.0  # hit ratio over the whole time after
    triton_rows: int = 0  # version 2's inferences after the promote
    promote: dict[str, object] = field(default_factory=dict)


def bodies(pool: int) -> list[bytes]:
    base = np.linspace(0.5, 3.4, 30, dtype=np.float32)
    return [
        orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "features",
                        "shape": [1, 30],
                        "datatype": "FP32",
                        "data": (base + np.float32(n) * 1e-3).tolist(),
                    }
                ]
            }
        )
        for n in range(pool)
    ]


async def drive(
    url: str,
    key: str,
    args: argparse.Namespace,
    promote_at: float,
    results: list[tuple[float, str]],
) -> None:
    """Requests at `args.rate`/s until `promote_at + args.after`, each answer's time and
    X-Cache kept in `results`."""
    pool = bodies(args.pool)
    random = np.random.default_rng(7)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    end = promote_at + args.after
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=headers) as session:
        tasks: set[asyncio.Task[None]] = set()

        async def one(body: bytes) -> None:
            async with session.post(f"{url}/v2/models/{MODEL}/infer", data=body) as response:
                await response.read()
                results.append((time.monotonic(), response.headers.get("x-cache", "error")))

        n = 0
        while time.monotonic() < end:
            due = started + n / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            index = min(int(random.zipf(args.zipf)), args.pool) - 1
            task = asyncio.ensure_future(one(pool[index]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.wait(tasks, timeout=30)


def ratio(results: list[tuple[float, str]], start: float, end: float) -> float:
    window = [cache for at, cache in results if start <= at < end]
    return sum(cache == "hit" for cache in window) / len(window) if window else 0.0


def version_rows(triton_url: str, version: str) -> int:
    stats = httpx.get(f"{triton_url}/v2/models/{MODEL}/versions/{version}/stats").json()
    return sum(int(s["inference_count"]) for s in stats["model_stats"])


def one_run(args: argparse.Namespace, warm_up: bool) -> Run:
    key = str(ApiKey.generate())
    run = Run(warm_up)
    env = {} if warm_up else {"GATEWAY_CACHE_WARMUP_REQUESTS": "0"}
    admin = {"Authorization": f"Bearer {key}"}
    with tempfile.TemporaryDirectory() as folder, backends(Path(folder), [MODEL]) as services:
        triton_url = services[0].endpoints.http_url
        url, _ = start_gateway("gateway", 1, Path(folder), services, key, env)
        traffic = {"weights": {"1": 100}}
        httpx.put(
            f"{url}/admin/models/{MODEL}/traffic", json=traffic, headers=admin
        ).raise_for_status()
        results: list[tuple[float, str]] = []
        start = time.monotonic()
        promote_at = start + args.before

        async def scenario() -> None:
            load = asyncio.ensure_future(drive(url, key, args, promote_at, results))
            await asyncio.sleep(max(0.0, promote_at - time.monotonic()))
            async with httpx.AsyncClient(headers=admin, timeout=120) as client:
                answer = await client.post(
                    f"{url}/admin/models/{MODEL}/promote", json={"version": "2"}
                )
            run.promote = answer.json()
            await load

        rows = version_rows(triton_url, "2")
        asyncio.run(scenario())
        run.triton_rows = version_rows(triton_url, "2") - rows
    run.before = ratio(results, start + args.before / 2, promote_at)
    run.after = ratio(results, promote_at, promote_at + args.after)
    run.buckets = [
        ratio(results, promote_at + b, promote_at + b + BUCKET_S)
        for b in range(0, int(args.after), BUCKET_S)
    ]
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--before", type=float, default=60.0)
    parser.add_argument("--after", type=float, default=60.0)
    parser.add_argument("--pool", type=int, default=5000)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    runs = [one_run(args, warm_up=True), one_run(args, warm_up=False)]
    report = render(args, runs)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "promote-warm-up.md").write_text(report)
    print(report)


def render(args: argparse.Namespace, runs: list[Run]) -> str:
    facts = machine()
    header = " | ".join(f"+{b}-{b + BUCKET_S} s" for b in range(0, int(args.after), BUCKET_S))
    lines = [
        "# The hit ratio around a promote, with and without the cache warm-up",
        "",
        f"`.venv/bin/python -m loadtests promote --rate {args.rate:g} --before {args.before:g} "
        f"--after {args.after:g} --pool {args.pool} --zipf {args.zipf:g}`, {facts['date']}, "
        f"{facts['cpu']}, {facts['cores']} cores. `{MODEL}` requests naming no version, open "
        f"loop at {args.rate:g}/s, inputs Zipf({args.zipf:g}) over {args.pool}; version 1 serves, "
        f"then `promote` moves all traffic to version 2 (fresh Triton, Redis and gateway per row).",
        "",
        f"| warm-up | hit ratio before | after, whole minute | {header} | v2 Triton rows after |",
        "|---|---:|---:|" + "---:|" * len(runs[0].buckets) + "---:|",
    ]
    for run in runs:
        buckets = " | ".join(f"{b:.2f}" for b in run.buckets)
        lines.append(
            f"| {'on' if run.warm_up else 'off'} | {run.before:.2f} | {run.after:.2f} | "
            f"{buckets} | {run.triton_rows:,} |"
        )
    on, off = runs
    kept = on.after / on.before if on.before else 0.0
    lines += [
        "",
        f"- With the warm-up, the hit ratio over the minute after the promote is "
        f"{kept:.0%} of the ratio before it (goal >= {GOAL:.0%}: "
        f"{'met' if kept >= GOAL else 'missed'}).",
        f"- The first {BUCKET_S} s after the promote: {on.buckets[0]:.2f} with the warm-up, "
        f"{off.buckets[0]:.2f} without; after that the most frequent requests, asked again "
        "within seconds at this rate, have refilled the cache either way.",
        f"- The promote's warm-up: {orjson.dumps(on.promote.get('warm_up')).decode()}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Soak: minutes of unique cache misses; the gateway's memory must level off within its bound.

    .venv/bin/python -m loadtests soak [--minutes 5] [--baseline-minutes 2] [--output DIR]

Two gateways (`gateway serve`, one worker each) in front of one embedded Triton and Redis,
measured one after the other under wrk (16 connections) sending only unique inputs, so
every request is a miss that the in-process tier keeps:
    bounded    GATEWAY_CACHE_LOCAL_MAX_BYTES at its default (64 MiB), for --minutes
    baseline   the in-process tier off (0), for --baseline-minutes: the memory a gateway
               needs without that tier, measured in the same run on the same machine
The worker's RSS is sampled every 10 s. The verdict: the bounded gateway's highest RSS
stays within the baseline's plateau (median of its last half) plus the bound plus a stated
allowance for the allocator (ALLOWANCE_MIB), and its last minute grows by less than 2 %.
Writes `soak.md` and `soak.json` (default: docs/benchmarks/).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from auth import ApiKey
from devstack import EmbeddedTriton
from gateway.settings import Settings
from loadtests.kit.processes import ROOT, backends, start_gateway
from loadtests.kit.targets import targets
from loadtests.kit.wrk import require_wrk, run_wrk, unique_post_script

MIB = 1024 * 1024
ALLOWANCE_MIB = 32  # allocator fragmentation and arenas beyond what the tier counts
SAMPLE_S = 10.0


@dataclass(frozen=True)
class Run:
    name: str
    local_max_bytes: int
    minutes: float
    requests: int
    requests_per_s: float
    errors: int
    rss_mib: list[tuple[float, float]]  # (seconds since the start, RSS in MiB)

    @property
    def highest(self) -> float:
        return max(rss for _, rss in self.rss_mib)

    @property
    def plateau(self) -> float:
        later = [rss for _, rss in self.rss_mib[len(self.rss_mib) // 2 :]]
        return statistics.median(later)

    def last_minute_growth(self) -> float:
        end = self.rss_mib[-1][0]
        window = [rss for at, rss in self.rss_mib if at >= end - 60]
        return (window[-1] - window[0]) / window[0]


def soak(
    name: str,
    local_max_bytes: int,
    minutes: float,
    services: tuple[EmbeddedTriton, str],
    key: str,
    state: Path,
) -> Run:
    env = {"GATEWAY_ACCESS_LOG": "false", "GATEWAY_CACHE_LOCAL_MAX_BYTES": str(local_max_bytes)}
    url, gateway = start_gateway(name, 1, state, services, key, env)
    try:
        worker = psutil.Process(gateway.pid or 0)
        target = targets()[0]
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        script = unique_post_script(*target.unique, headers, run_id=random.randrange(1, 16_000_000))
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_S):
                samples.append((time.monotonic() - started, worker.memory_info().rss / MIB))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = run_wrk(url + target.triton_path, script, connections=16, duration_s=minutes * 60)
        done.set()
        sampler.join()
        samples.append((time.monotonic() - started, worker.memory_info().rss / MIB))
        return Run(
            name,
            local_max_bytes,
            minutes,
            result.requests,
            result.requests_per_s,
            result.errors,
            samples,
        )
    finally:
        gateway.stop()


def report(bounded: Run, baseline: Run) -> tuple[str, bool]:
    bound_mib = bounded.local_max_bytes / MIB
    ceiling = baseline.plateau + bound_mib + ALLOWANCE_MIB
    growth = bounded.last_minute_growth()
    ok = bounded.highest <= ceiling and growth < 0.02
    lines = [
        "# Soak: unique misses, gateway memory",
        "",
        "`make models && .venv/bin/python -m loadtests soak` (wrk, 16 connections, one "
        "worker, tabular_classifier, every request a new input). One run on a shared 2-core "
        "machine; RSS of the gateway's worker process.",
        "",
        "| run | in-process tier bound | minutes | misses | misses/s | errors | RSS plateau "
        "MiB | highest RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in (baseline, bounded):
        lines.append(
            f"| {run.name} | {run.local_max_bytes / MIB:.0f} MiB | {run.minutes:g} | "
            f"{run.requests:,} | {run.requests_per_s:,.0f} | {run.errors} | "
            f"{run.plateau:.0f} | {run.highest:.0f} |"
        )
    lines += [
        "",
        f"Ceiling: baseline plateau {baseline.plateau:.0f} MiB + bound {bound_mib:.0f} MiB + "
        f"allowance {ALLOWANCE_MIB} MiB = {ceiling:.0f} MiB; the bounded gateway's highest "
        f"RSS was {bounded.highest:.0f} MiB, and its last minute grew "
        f"{100 * growth:+.1f} %: **{'within the bound' if ok else 'OVER THE BOUND'}**.",
        "",
        "RSS over time (s: MiB), bounded run: "
        + ", ".join(f"{at:.0f}: {rss:.0f}" for at, rss in bounded.rss_mib),
        "",
    ]
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--baseline-minutes", type=float, default=2.0)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    require_wrk()
    key = str(ApiKey.generate())
    bound = Settings.model_fields["cache_local_max_bytes"].default
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        with backends(state, ["tabular_classifier"]) as (triton, redis_url):
            services = (triton, redis_url)
            baseline = soak("baseline (tier off)", 0, args.baseline_minutes, services, key, state)
            bounded = soak("bounded (default)", bound, args.minutes, services, key, state)
    text, ok = report(bounded, baseline)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "soak.md").write_text(text)
    runs = [
        {**asdict(run), "plateau": run.plateau, "highest": run.highest}
        for run in (baseline, bounded)
    ]
    (args.output / "soak.json").write_text(json.dumps(runs, indent=2) + "\n")
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

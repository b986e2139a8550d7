"""One load-generator run and the CPU a gateway used meanwhile; medians of repeated runs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from loadtests.kit.processes import cpu_seconds
from loadtests.kit.wrk import WrkResult, run_wrk


@dataclass(frozen=True)
class Run:
    wrk: WrkResult
    cores: float | None = None  # CPU the gateway's processes used meanwhile, in cores

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.cores is None or not self.wrk.requests_per_s:
            return None
        return self.cores / self.wrk.requests_per_s * 1e6


def run_wrk_watching(
    url: str, script: str, connections: int, duration_s: float, pid: int | None
) -> Run:
    """A wrk run, and the CPU that process `pid` (a gateway) used meanwhile, if given."""
    if pid is None:
        return Run(run_wrk(url, script, connections=connections, duration_s=duration_s))
    cpu, started = cpu_seconds(pid), time.monotonic()
    result = run_wrk(url, script, connections=connections, duration_s=duration_s)
    return Run(result, (cpu_seconds(pid) - cpu) / (time.monotonic() - started))


def median_run(results: list[WrkResult]) -> WrkResult:
    """The run with the median throughput (its latencies come with it)."""
    ranked = sorted(results, key=lambda r: r.requests_per_s)
    return ranked[(len(ranked) - 1) // 2]


def median_of(runs: list[Run]) -> Run:
    middle = median_run([run.wrk for run in runs])
    return next(run for run in runs if run.wrk is middle)

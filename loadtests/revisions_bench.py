"""Did a change make the gateway faster? Two revisions side by side, in one run.

    .venv/bin/python -m loadtests.revisions_bench --base REV [--rounds 3] [--duration 3]
                                                  [--connections 1 16]

Checks out `--base` (any git revision) into a temporary worktree and starts, in front of
one embedded Triton (the smallest model) and Redis, a one-worker gateway from that
revision and one from the working tree. Then, at each connection count, for `--rounds`
rounds with the rows interleaved and the gateways' order alternating (so the machine's
drift hits both alike), wrk measures direct Triton, each gateway's cache misses (unique
inputs) and hits. Prints the median of each row as a markdown table, with the gateway's
CPU per request and the p50 it adds over direct Triton. Both revisions use the working
tree's model repository.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from auth.keys import ApiKey
from gateway.embedded import ManagedProcess
from loadtests.bench import targets
from loadtests.processes import ROOT, backends, cpu_seconds, start_gateway
from loadtests.wrk import WrkResult, post_script, run_wrk, unique_post_script


@dataclass(frozen=True)
class Run:
    result: WrkResult
    cpu_us_per_request: float | None


def measure(url: str, script: str, connections: int, seconds: float, pid: int | None) -> Run:
    before = cpu_seconds(pid) if pid else 0.0
    result = run_wrk(url, script, connections=connections, duration_s=seconds)
    used = cpu_seconds(pid) - before if pid else None
    per_request = 1e6 * used / max(result.requests, 1) if used is not None else None
    return Run(result, per_request)


def git(*args: str) -> None:
    executable = shutil.which("git")
    if executable is None:
        raise SystemExit("git is needed to check out the base revision")
    subprocess.run([executable, "-C", str(ROOT), *args], check=True, capture_output=True)


def compare(
    base: Path, label: str, connections: list[int], rounds: int, seconds: float, state: Path
) -> dict[tuple[str, int], list[Run]]:
    """Start both gateways and measure every row `rounds` times per connection count."""
    target = targets()[0]  # the smallest model
    key = str(ApiKey.generate())
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    runs: dict[tuple[str, int], list[Run]] = {}
    gateways: list[tuple[str, str, ManagedProcess]] = []
    with backends(state, ["tabular_classifier"]) as services:
        try:
            for name, source in ((label, base), ("working tree", ROOT)):
                # PYTHONSAFEPATH: the current folder must not shadow PYTHONPATH's gateway
                env = {"PYTHONPATH": str(source), "PYTHONSAFEPATH": "1"}
                url, process = start_gateway(
                    f"gateway-{len(gateways)}", 1, state, services, key, env
                )
                gateways.append((name, url + target.triton_path, process))
            direct = services[0].endpoints.http_url + target.triton_path
            for count in connections:
                for round_ in range(rounds):
                    rows: list[tuple[str, str, str, int | None]] = [
                        ("direct Triton", direct, post_script(target.body, {}), None)
                    ]
                    # alternate which gateway goes first: the second measured came out
                    # ~10% lower on hits at 16 connections whichever it was
                    order = gateways if round_ % 2 == 0 else gateways[::-1]
                    for name, url, process in order:
                        run_id = random.randrange(1, 16_000_000)
                        miss = unique_post_script(*target.unique, auth, run_id=run_id)
                        rows.append((f"{name}: miss", url, miss, process.pid))
                        hit = post_script(target.body, auth)
                        rows.append((f"{name}: hit", url, hit, process.pid))
                    for row, url, script, pid in rows:
                        runs.setdefault((row, count), []).append(
                            measure(url, script, count, seconds, pid)
                        )
        finally:
            for _, _, process in gateways:
                process.stop()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "base"
        git("worktree", "add", "--detach", str(base), args.base)
        try:
            runs = compare(
                base, args.base, args.connections, args.rounds, args.duration, Path(folder)
            )
        finally:
            git("worktree", "remove", "--force", str(base))
    print(report(runs))


def report(runs: dict[tuple[str, int], list[Run]]) -> str:
    lines = [
        "| row | connections | requests/s | p50 ms | p99 ms | errors | p50 added "
        "| CPU µs/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (row, connections), group in runs.items():
        direct = statistics.median(r.result.p50_ms for r in runs[("direct Triton", connections)])
        p50 = statistics.median(r.result.p50_ms for r in group)
        cpu = [r.cpu_us_per_request for r in group if r.cpu_us_per_request is not None]
        lines.append(
            f"| {row} | {connections} "
            f"| {statistics.median(r.result.requests_per_s for r in group):,.0f} "
            f"| {p50:.2f} | {statistics.median(r.result.p99_ms for r in group):.2f} "
            f"| {sum(r.result.errors for r in group)} "
            f"| {'-' if row == 'direct Triton' else f'{p50 - direct:+.2f} ms'} "
            f"| {f'{statistics.median(cpu):,.0f}' if cpu else '-'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Did a change make the gateway faster? Two revisions side by side, in one run.

    .venv/bin/python -m loadtests.investigations.revisions_bench --base REV [--rounds 3]
        [--duration 3] [--connections 1 16]

Checks out `--base` (any git revision) into a temporary worktree and starts, in front of
one embedded Triton (the smallest model) and Redis, a one-worker gateway from that
revision and one from the working tree. Then, at each connection count, for `--rounds`
rounds with the rows interleaved and the gateways' order alternating (so the machine's
drift hits both alike), wrk measures direct Triton, each gateway's cache misses (unique
inputs) and hits. Prints each row's median run (by throughput, as `make bench` does) as
a markdown table, with the gateway's CPU per request and the p50 it adds over direct
Triton. Both revisions use the working tree's model repository.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from auth.keys import ApiKey
from devstack import ManagedProcess
from loadtests.kit.processes import ROOT, backends, start_gateway
from loadtests.kit.runs import Run, median_of, run_wrk_watching
from loadtests.kit.targets import targets
from loadtests.kit.wrk import post_script, unique_post_script


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
                            run_wrk_watching(url, script, count, seconds, pid)
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
        direct = median_of(runs[("direct Triton", connections)]).wrk.p50_ms
        middle = median_of(group)  # the run with the median throughput, as in make bench
        cpu = middle.cpu_us_per_request
        lines.append(
            f"| {row} | {connections} | {middle.wrk.requests_per_s:,.0f} "
            f"| {middle.wrk.p50_ms:.2f} | {middle.wrk.p99_ms:.2f} "
            f"| {sum(run.wrk.errors for run in group)} "
            f"| {'-' if row == 'direct Triton' else f'{middle.wrk.p50_ms - direct:+.2f} ms'} "
            f"| {'-' if cpu is None else f'{cpu:,.0f}'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Per-step (saturation) summary of a step-load run, from Locust's `_stats_history.csv`.

    .venv/bin/python -m loadtests.step_summary REPORT_stats_history.csv [--user-rps R]

One row per step (user count): offered load (users x what a user of the mix offers:
`user_mix.offered_per_user`), achieved
requests/s and failures/s (means), and p50/p95/p99 in ms (medians of Locust's rolling
percentiles). The first third of each step is left out: Locust's rolling window still holds
the step before. A step is marked where throughput stops following the offered load
(under 90 % of it) or stops growing (under 5 % above the step before): saturation.
`make loadtest` prints this table and saves it beside the reports as `steps.csv`.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from dataclasses import astuple, dataclass, fields
from pathlib import Path

PERCENTILES = ("50%", "95%", "99%")


@dataclass(frozen=True)
class Step:
    users: int
    offered_rps: float | None
    achieved_rps: float
    failures_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    saturated: bool


def summarise(history: Path, user_rps: float | None) -> list[Step]:
    by_users: dict[int, list[dict[str, str]]] = defaultdict(list)
    with history.open() as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated" and int(row["User Count"]) > 0:
                by_users[int(row["User Count"])].append(row)
    steps: list[Step] = []
    for users in sorted(by_users):
        rows = by_users[users]
        settled = rows[len(rows) // 3 :] or rows
        achieved = statistics.fmean(float(r["Requests/s"]) for r in settled)
        offered = users * user_rps if user_rps else None
        previous = steps[-1].achieved_rps if steps else None
        saturated = (offered is not None and achieved < 0.9 * offered) or (
            previous is not None and achieved < 1.05 * previous
        )
        p50, p95, p99 = (_median(settled, column) for column in PERCENTILES)
        failures = statistics.fmean(float(r["Failures/s"]) for r in settled)
        steps.append(Step(users, offered, achieved, failures, p50, p95, p99, saturated))
    return steps


def _median(rows: list[dict[str, str]], column: str) -> float:
    values = [float(r[column]) for r in rows if r.get(column) not in (None, "", "N/A")]
    return statistics.median(values) if values else float("nan")


def render(steps: list[Step]) -> str:
    lines = [
        f"{'users':>6} {'offered/s':>10} {'achieved/s':>11} {'failures/s':>11} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    ]
    for step in steps:
        offered = "-" if step.offered_rps is None else f"{step.offered_rps:.0f}"
        lines.append(
            f"{step.users:>6} {offered:>10} {step.achieved_rps:>11.1f} {step.failures_rps:>11.2f} "
            f"{step.p50_ms:>8.1f} {step.p95_ms:>8.1f} {step.p99_ms:>8.1f}"
            + ("  <- saturated" if step.saturated else "")
        )
    first = next((step for step in steps if step.saturated), None)
    lines.append(
        f"saturation from {first.users} users ({first.achieved_rps:.0f} requests/s)"
        if first
        else "no saturation within the steps run"
    )
    return "\n".join(lines)


def save(steps: list[Step], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([field.name for field in fields(Step)])
        writer.writerows(astuple(step) for step in steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("history", type=Path)
    parser.add_argument("--user-rps", type=float, default=None)
    args = parser.parse_args()
    print(render(summarise(args.history, args.user_rps)))


if __name__ == "__main__":
    main()

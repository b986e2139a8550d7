"""A few seconds of the Locust scenarios against the test gateway: requests succeed and the
report is written (not a performance assertion)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from loadtests.step_summary import summarise
from tests.support.data import ROOT
from tests.support.keys import ADMIN_KEY


def test_locust_scenarios_run_and_report(gateway_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "GATEWAY_KEY": ADMIN_KEY, "LOADTEST_RATE_LIMIT": "1"}
    finished = subprocess.run(
        [
            sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
            "--headless", "--host", gateway_url, "-u", "8", "-r", "8", "-t", "8s",
            "--csv", str(tmp_path / "smoke"), "--csv-full-history",
            "--html", str(tmp_path / "smoke.html"),
            "--only-summary",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert (tmp_path / "smoke.html").stat().st_size > 0
    with (tmp_path / "smoke_stats.csv").open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows.pop("Aggregated")
    assert int(total["Request Count"]) > 20 and int(total["Failure Count"]) == 0
    names = set(rows)
    assert any(name.endswith("[hit]") for name in names), names
    assert any(name.endswith("[miss]") for name in names), names
    assert any("text_embedding" in name for name in names), names
    limited = sum(int(row["Request Count"]) for name, row in rows.items() if "[429" in name)
    assert 0 < limited < int(total["Request Count"]) / 10  # paced: no flood of 429s
    steps = summarise(tmp_path / "smoke_stats_history.csv", user_rps=10)
    assert [step.users for step in steps] == [8] and steps[0].achieved_rps > 0

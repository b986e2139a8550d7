"""`make loadtest`: the Locust scenarios headless against a fresh `gateway up`.

    .venv/bin/python -m loadtests load [--output DIR] [extra locust arguments]

Starts `gateway up` (embedded Redis and Triton, state in a temporary folder, an admin key
made for the run), runs `loadtests/locustfile.py` with the step-load shape
(`loadtests/step_load.py`, 6 steps of 20 s by default), writes the CSV and HTML reports to
`loadtests/reports/<UTC time>/` (or --output), then stops everything and prints (and saves
as `steps.csv`) the per-step summary of `loadtests/step_summary.py`. The knobs are
environment variables: LOADTEST_STEP_USERS, LOADTEST_STEP_SECONDS, LOADTEST_STEPS
(step_load.py) and LOADTEST_USER_RPS, LOADTEST_POOL, LOADTEST_ZIPF, LOADTEST_RATE_LIMIT
(locustfile.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from auth import ApiKey
from devstack import ManagedProcess
from devstack.ports import free_port
from loadtests.kit.processes import start
from loadtests.step_summary import render, save, summarise
from loadtests.user_mix import offered_per_user

HERE = Path(__file__).resolve().parent


def start_stack(state: Path, key: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_ADMIN_KEY": key, "GATEWAY_ACCESS_LOG": "false"})
    argv = [sys.executable, "-m", "gateway", "up", "--port", str(port), "--state-dir", str(state)]
    argv += ["--grpc-port", str(free_port())]  # not --port + 1, which may be taken
    url = f"http://127.0.0.1:{port}"
    stack = start(
        "gateway-up",
        argv,
        state,
        env,
        f"{url}/v2/health/ready",
        ready_timeout_s=180,
        stop_timeout_s=60,
    )
    return stack, url


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path)
    args, locust_args = parser.parse_known_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or HERE / "reports" / stamp
    output.mkdir(parents=True, exist_ok=True)
    key = str(ApiKey.generate())
    with tempfile.TemporaryDirectory() as folder:
        stack, url = start_stack(Path(folder), key)
        try:
            command = [
                sys.executable, "-m", "locust",
                "-f", f"{HERE / 'locustfile.py'},{HERE / 'step_load.py'}",
                "--headless", "--host", url,
                "--csv", str(output / "loadtest"), "--csv-full-history",
                "--html", str(output / "loadtest.html"),
                "--only-summary",
                *locust_args,
            ]  # fmt: skip
            started = time.monotonic()
            code = subprocess.run(
                command, env={**os.environ, "GATEWAY_KEY": key}, check=False
            ).returncode
            print(f"locust finished in {time.monotonic() - started:.0f} s with exit code {code}")
        finally:
            stack.stop()
    history = output / "loadtest_stats_history.csv"
    if history.exists():
        per_user = offered_per_user(
            float(os.environ.get("LOADTEST_USER_RPS", "10")),
            float(os.environ.get("LOADTEST_RATE_LIMIT", "2")),
        )
        steps = summarise(history, per_user)
        save(steps, output / "steps.csv")
        print(render(steps))
    print(f"reports: {output}")
    return code


if __name__ == "__main__":
    sys.exit(main())

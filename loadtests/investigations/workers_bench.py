"""Two workers against one on the cache-hit path, with a socket per worker and with one shared.

    .venv/bin/python -m loadtests.investigations.workers_bench [--duration 3] [--rounds 7]

Starts an embedded Redis and Triton (`tabular_classifier`) and three gateways
(`gateway serve`): 1 worker; 2 workers with a listening socket each (SO_REUSEPORT, the
default); 2 workers sharing one socket (GATEWAY_REUSE_PORT=false). Then wrk (1 thread,
16 connections, cache hits on the smallest model) runs against each in turn, `--rounds`
times, interleaved. Prints each gateway's median, lowest and highest throughput, the
ratios of the medians to one worker, the CPU the gateway used in its median run (cores,
and microseconds per request), and how wrk's 16 connections fell on the workers in each
run (a socket per worker spreads them; a shared socket leaves it to whichever worker wakes
first).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from auth import ApiKey
from devstack import ManagedProcess
from loadtests.kit.processes import backends, start_gateway
from loadtests.kit.runs import Run, median_of, run_wrk_watching
from loadtests.kit.targets import targets
from loadtests.kit.wrk import post_script, require_wrk

GATEWAYS = {  # name: (workers, extra environment)
    "1 worker": (1, {}),
    "2 workers, socket each": (2, {}),
    "2 workers, shared socket": (2, {"GATEWAY_REUSE_PORT": "false"}),
}


@contextmanager
def gateways(state: Path, key: str) -> Iterator[dict[str, tuple[str, int]]]:
    """Redis, Triton and the gateways of GATEWAYS; yields (base URL, pid) by name."""
    processes: list[ManagedProcess] = []
    with backends(state, ["tabular_classifier"]) as services:
        try:
            started = {}
            for number, (name, (workers, extra_env)) in enumerate(GATEWAYS.items()):
                url, process = start_gateway(
                    f"gateway-{number}", workers, state, services, key, extra_env
                )
                processes.append(process)
                started[name] = (url, process.pid or 0)
            yield started
        finally:
            for process in reversed(processes):
                process.stop()


def connection_split(pid: int, port: int) -> list[int]:
    """Established connections to `port` held by each process of the gateway `pid`."""
    gateway = psutil.Process(pid)
    counts = []
    for process in [gateway, *gateway.children(recursive=True)]:
        held = [
            c
            for c in process.net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
        ]
        if held:
            counts.append(len(held))
    return sorted(counts, reverse=True)


def measured(url: str, pid: int, script: str, duration_s: float) -> tuple[Run, list[int]]:
    """One wrk run with the CPU the gateway used, and how its connections fell on the
    workers half-way through (largest first)."""
    split: list[int] = []

    def look() -> None:
        time.sleep(duration_s / 2)
        split.extend(connection_split(pid, urlsplit(url).port or 80))

    looker = threading.Thread(target=look)
    looker.start()
    run = run_wrk_watching(url, script, 16, duration_s, pid)
    looker.join()
    return run, split


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    require_wrk()
    key = str(ApiKey.generate())
    target = targets()[0]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    script = post_script(target.body, headers)
    runs: dict[str, list[tuple[Run, list[int]]]] = {}
    with tempfile.TemporaryDirectory() as folder, gateways(Path(folder), key) as started:
        for url, _ in started.values():  # the first request of each worker is a miss
            for _ in range(20):
                httpx.post(url + target.triton_path, content=target.body, headers=headers)
        for _ in range(args.rounds):
            for name, (url, pid) in started.items():
                measurement = measured(url + target.triton_path, pid, script, args.duration)
                runs.setdefault(name, []).append(measurement)
    one = median_of([run for run, _ in runs["1 worker"]]).wrk.requests_per_s
    print(f"cache hits, smallest model, wrk 16 connections, {args.rounds} x {args.duration:g} s")
    print(
        f"{'gateway':26} {'median':>7} {'lowest':>7} {'highest':>7} {'vs 1':>6} "
        f"{'cores':>6} {'CPU us/req':>10}  connections per worker, run by run"
    )
    for name, measurements in runs.items():
        rates = sorted(run.wrk.requests_per_s for run, _ in measurements)
        middle = median_of([run for run, _ in measurements])
        splits = " ".join("/".join(map(str, split)) for _, split in measurements)
        print(
            f"{name:26} {middle.wrk.requests_per_s:7,.0f} {rates[0]:7,.0f} {rates[-1]:7,.0f} "
            f"{middle.wrk.requests_per_s / one:5.2f}x {middle.cores or 0:6.2f} "
            f"{middle.cpu_us_per_request or 0:10.0f}  {splits}"
        )


if __name__ == "__main__":
    main()

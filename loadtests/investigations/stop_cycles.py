"""Start and stop `gateway serve --workers 2` under load, many times: no stop may hang.

    .venv/bin/python -m loadtests.investigations.stop_cycles [--cycles 50] [--grace 2]

Each cycle starts the gateway (2 workers, GATEWAY_SHUTDOWN_GRACE_S=grace) in front of an
embedded Triton and Redis, puts load on it (4 threads sending inference requests back to
back), opens connections that announce a body and never send it and connections that
send nothing, then sends SIGTERM to the supervisor alone (as a container runtime does) and
times how long until it and both workers are gone. It prints a line per cycle and a
summary, and exits 1 if any stop took longer than the deadline (2 x grace + 5 s: the
drain, closing the clients, then the supervisor's kill) or left a worker behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from auth import ApiKey
from devstack import EmbeddedTriton
from gateway.runtime.serving import STOP_MARGIN_S
from loadtests.kit.processes import backends, start_gateway

BODY = {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}]}


@dataclass(frozen=True)
class Stop:
    seconds: float
    leftovers: int  # worker processes still alive once the supervisor exited


def stop_under_load(
    services: tuple[EmbeddedTriton, str], key: str, state: Path, name: str, grace_s: float
) -> Stop:
    """One cycle: start, load, stall, SIGTERM the supervisor; how the stop went."""
    env = {"GATEWAY_SHUTDOWN_GRACE_S": str(grace_s), "GATEWAY_ACCESS_LOG": "false"}
    url, gateway = start_gateway(name, 2, state, services, key, env)
    try:
        supervisor = psutil.Process(gateway.pid or 0)
        workers = [  # not multiprocessing's resource tracker, which outlives them briefly
            child
            for child in supervisor.children()
            if "resource_tracker" not in " ".join(child.cmdline())
        ]
        if len(workers) != 2:
            raise RuntimeError(f"expected 2 workers under the supervisor, found {len(workers)}")
        stopping = threading.Event()
        threads = [
            threading.Thread(target=_load, args=(url, key, stopping), daemon=True) for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        held = _stalled_connections(url, key, 4) + _idle_connections(url, 4)
        time.sleep(0.5)  # the load is flowing and the stalled requests are in flight
        started = time.monotonic()
        os.kill(supervisor.pid, signal.SIGTERM)
        supervisor.wait(timeout=120)
        seconds = time.monotonic() - started
        leftovers = sum(1 for worker in workers if _alive(worker))
        stopping.set()
        for connection in held:
            connection.close()
        return Stop(seconds, leftovers)
    finally:
        gateway.stop()


def _load(url: str, key: str, stopping: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        while not stopping.is_set():
            try:
                client.post("/v2/models/tabular_classifier/infer", json=BODY)
            except httpx.HTTPError:
                time.sleep(0.05)  # stopping: the gateway refuses connections


def _stalled_connections(url: str, key: str, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection = _connect(url)
        connection.sendall(
            b"POST /v2/models/tabular_classifier/infer HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        connections.append(connection)
    return connections


def _idle_connections(url: str, count: int) -> list[socket.socket]:
    return [_connect(url) for _ in range(count)]


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def deadline_s(grace_s: float) -> float:
    return 2 * grace_s + STOP_MARGIN_S


def run(services: tuple[EmbeddedTriton, str], state: Path, cycles: int, grace_s: float) -> bool:
    """Run the cycles; print each and a summary; whether every stop was in time and clean."""
    key = str(ApiKey.generate())
    stops = []
    for cycle in range(1, cycles + 1):
        stop = stop_under_load(services, key, state, f"gateway-{cycle}", grace_s)
        stops.append(stop)
        print(f"cycle {cycle:>3}: stopped in {stop.seconds:5.2f} s, workers left {stop.leftovers}")
    worst = max(stop.seconds for stop in stops)
    median = statistics.median(stop.seconds for stop in stops)
    ok = worst <= deadline_s(grace_s) and not any(stop.leftovers for stop in stops)
    print(
        f"{cycles} cycles, grace {grace_s:g} s: stop median {median:.2f} s, worst {worst:.2f} s "
        f"(deadline {deadline_s(grace_s):.0f} s); {'all in time' if ok else 'FAILED'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--grace", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        with backends(state, ["tabular_classifier"]) as (triton, redis_url):
            ok = run((triton, redis_url), state, args.cycles, args.grace)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Tracing configured, the heaviest load of `make bench`: the embedded Triton stays up.

    .venv/bin/python -m loadtests.investigations.tracing_safety [--seconds 30]

Starts an OTLP sink and `gateway up` with OTEL_EXPORTER_OTLP_ENDPOINT pointing at it and
the defaults otherwise (so GATEWAY_TRITON_TRACING is false: the embedded Triton 2.51 does
not trace, because it crashes with tracing under load, Triton issue 7795). Then wrk, 16
connections, `--seconds` straight at Triton and then at the gateway with a new input per
request (the bench's heaviest rows). Prints the throughputs, the spans the sink received
by service, and whether Triton is still alive and ready; exits 1 if it is not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

import httpx
import psutil

from auth import ApiKey
from loadtests.kit.otlp_sink import OtlpReceiver
from loadtests.kit.targets import targets
from loadtests.kit.wrk import post_script, run_wrk, unique_post_script
from loadtests.run_loadtest import start_stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    key = str(ApiKey.generate())
    target = targets()[0]
    with OtlpReceiver() as sink, tempfile.TemporaryDirectory() as folder:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
        state = Path(folder)
        stack, url = start_stack(state, key)
        try:
            described = json.loads((state / "stack.json").read_text())
            triton_url, triton_pid = described["triton_http"], described["pids"]["triton"]
            plain = {"Content-Type": "application/json"}
            auth = {**plain, "Authorization": f"Bearer {key}"}
            direct = run_wrk(
                triton_url + target.triton_path,
                post_script(target.body, plain),
                connections=16,
                duration_s=args.seconds,
            )
            miss = unique_post_script(*target.unique, auth, run_id=random.randrange(1, 16_000_000))
            gateway = run_wrk(
                url + target.triton_path, miss, connections=16, duration_s=args.seconds
            )
            alive = psutil.pid_exists(triton_pid) and psutil.Process(triton_pid).status() not in (
                psutil.STATUS_ZOMBIE,
                psutil.STATUS_DEAD,
            )
            ready = httpx.get(f"{triton_url}/v2/health/ready", timeout=5).status_code == 200
            services = Counter(span.service for span in sink.received())
        finally:
            stack.stop()
    for name, result in (("direct Triton", direct), ("gateway misses", gateway)):
        print(f"{name}, 16 connections: {result.requests_per_s:,.0f} req/s, {result.errors} errors")
    print(f"spans received by service: {dict(services)}")
    state_words = f"{'alive' if alive else 'DEAD'}, {'ready' if ready else 'NOT READY'}"
    print(f"Triton (pid {triton_pid}) afterwards: {state_words}")
    return 0 if alive and ready else 1


if __name__ == "__main__":
    sys.exit(main())

"""Faults under steady load: what clients see while Triton or Redis fails, and recovery.

    .venv/bin/python -m loadtests.investigations.faults [--rate 40] [--output DIR]

Starts `gateway up` (embedded Triton and Redis, under its supervisor) and sends two
open-loop streams at `--rate` requests/s each, from two clients (keys): misses (a new input
every request) and hits (one input, cached). Then, one after the other, with a quiet spell between:
    Triton killed     SIGKILL; the supervisor restarts it (models loaded again)
    Triton hung       SIGSTOP for 15 s, then SIGCONT (no restart)
    Redis hung        SIGSTOP for 10 s, then SIGCONT
For each: requests failed (misses, hits), p99 of each while the fault lasts, and how long
misses kept failing after the fault began (recovery). Writes `faults.md` (default:
docs/benchmarks/) and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson

from auth import ApiKey
from loadtests.kit.processes import ROOT
from loadtests.kit.stats import percentile
from loadtests.run_loadtest import start_stack

PATH = "/v2/models/tabular_classifier/infer"


@dataclass(frozen=True)
class Sample:
    kind: str  # miss | hit
    sent_at: float  # seconds since the scenario began
    status: int  # 0: no answer
    seconds: float


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[Path], None]
    duration_s: float  # how long the fault lasts (0: an instant, e.g. a kill)
    restore: Callable[[Path], None]


def _pid(state: Path, name: str) -> int:
    pid: int = json.loads((state / "stack.json").read_text())["pids"][name]
    return pid


def _signal(name: str, signum: signal.Signals) -> Callable[[Path], None]:
    return lambda state: os.kill(_pid(state, name), signum)


FAULTS = [
    Fault("Triton killed (SIGKILL)", _signal("triton", signal.SIGKILL), 0, lambda _: None),
    Fault(
        "Triton hung (SIGSTOP 15 s)",
        _signal("triton", signal.SIGSTOP),
        15,
        _signal("triton", signal.SIGCONT),
    ),
    Fault(
        "Redis hung (SIGSTOP 10 s)",
        _signal("redis", signal.SIGSTOP),
        10,
        _signal("redis", signal.SIGCONT),
    ),
]


def body(value: float) -> bytes:
    tensor = {"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [value] * 30}
    return orjson.dumps({"inputs": [tensor]})


async def stream(
    url: str,
    keys: tuple[str, str],
    rate: float,
    seconds: float,
    fault: Fault,
    state: Path,
    first: int,
) -> tuple[list[Sample], float, float]:
    """Both streams for `seconds`, the fault injected after 10 s; (samples, injected at,
    restored at). `keys`: the misses' client's and the hits' client's."""
    headers = {
        kind: {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for kind, key in zip(("miss", "hit"), keys, strict=True)
    }
    samples: list[Sample] = []
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:
        start = time.perf_counter()

        async def one(kind: str, payload: bytes) -> None:
            sent = time.perf_counter()
            try:
                async with session.post(
                    url + PATH, data=payload, headers=headers[kind]
                ) as response:
                    await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError):
                status = 0
            samples.append(Sample(kind, sent - start, status, time.perf_counter() - sent))

        async def inject() -> tuple[float, float]:
            await asyncio.sleep(10)
            injected = time.perf_counter() - start
            fault.inject(state)
            await asyncio.sleep(fault.duration_s)
            fault.restore(state)
            return injected, time.perf_counter() - start

        injector = asyncio.create_task(inject())
        tasks = []
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one("miss", body(first + n + 0.5))))
            tasks.append(asyncio.create_task(one("hit", body(0.25))))
        await asyncio.gather(*tasks)
        injected, restored = await injector
    return samples, injected, restored


def row(fault: Fault, samples: list[Sample], injected: float, restored: float) -> str:
    during = [s for s in samples if injected <= s.sent_at <= max(restored, injected + 1)]
    after = [s for s in samples if s.sent_at >= injected]

    def failed(kind: str) -> str:
        kinds = [s for s in after if s.kind == kind]
        return f"{sum(1 for s in kinds if s.status != 200)} of {len(kinds)}"

    def p99(kind: str) -> str:
        values = sorted(s.seconds for s in during if s.kind == kind)
        return f"{percentile(values, 0.99) * 1000:,.0f}"

    failing = [s.sent_at for s in after if s.kind == "miss" and s.status != 200]
    recovery = f"{max(failing) - injected:.1f} s" if failing else "no miss failed"
    return (
        f"| {fault.name} | {failed('miss')} | {failed('hit')} | {p99('miss')} | {p99('hit')} "
        f"| {recovery} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    key = str(ApiKey.generate())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        stack, url = start_stack(state, key)
        try:
            created = httpx.post(
                f"{url}/admin/keys",
                json={"name": "hits", "models": ["*"]},
                headers={"Authorization": f"Bearer {key}"},
            )
            created.raise_for_status()
            keys = (key, str(created.json()["key"]))
            for index, fault in enumerate(FAULTS):
                first = (index + 1) * 1_000_000  # inputs no other scenario sent
                samples, injected, restored = asyncio.run(
                    stream(url, keys, args.rate, args.seconds, fault, state, first)
                )
                rows.append(row(fault, samples, injected, restored))
                print(rows[-1], flush=True)
        finally:
            stack.stop()
    text = "\n".join(
        [
            "# Faults under load",
            "",
            f"`.venv/bin/python -m loadtests.investigations.faults --rate {args.rate:g}` "
            "against `gateway up` "
            "(embedded Triton and Redis under its supervisor), one worker, tabular_classifier: "
            f"two open-loop streams of {args.rate:g} requests/s each from two keys, misses "
            f"(a new input each) and hits (one cached input), {args.seconds:g} s per fault, "
            "the fault injected after 10 s. One run on a shared 2-core machine.",
            "",
            "| fault | misses failed (from the fault on) | hits failed | miss p99 ms during "
            "| hit p99 ms during | misses failing until |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Misses failing until: the last failed miss, counted from the fault's start (for a "
            "kill, that includes Triton's restart by the supervisor).",
            "",
        ]
    )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "faults.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Gateway configurations side by side on one machine: the same Triton and Redis, one
gateway worker each, wrk rounds interleaved (each round starting from another
configuration), the median of each. How the hot-path changes in
docs/benchmarks/hot-path.md were measured.

    .venv/bin/python -m loadtests ab [--requests hit|miss] [--connections 16]
        [--rounds 4] [--duration 3] NAME=[VAR=VALUE,...][@CHECKOUT] ...

Each NAME=... is a gateway: its extra environment variables, and with @CHECKOUT the code of
another checkout (to compare a change with the code before it):

    git worktree add /tmp/before HEAD~1
    .venv/bin/python -m loadtests ab --requests hit before=@/tmp/before after=
    .venv/bin/python -m loadtests ab per-line=GATEWAY_ACCESS_LOG_FLUSH_S=0 batched=

Smallest model (tabular_classifier v1); hits repeat one body, misses send a unique one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from auth import ApiKey
from loadtests.kit.processes import backends, start_gateway
from loadtests.kit.runs import run_wrk_watching
from loadtests.kit.targets import TRITON_MODELS, targets
from loadtests.kit.wrk import require_wrk


@dataclass(frozen=True)
class Config:
    name: str
    env: dict[str, str]
    source: Path | None

    @classmethod
    def parse(cls, text: str) -> Config:
        name, separator, rest = text.partition("=")
        if not name or not separator:
            raise argparse.ArgumentTypeError(f"{text!r} is not NAME=[VAR=VALUE,...][@CHECKOUT]")
        variables, _, source = rest.partition("@")
        env = {}
        for pair in filter(None, variables.split(",")):
            variable, equals, value = pair.partition("=")
            if not equals:
                raise argparse.ArgumentTypeError(f"{pair!r} is not VAR=VALUE")
            env[variable] = value
        return cls(name, env, Path(source) if source else None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("configs", nargs="+", type=Config.parse, metavar="NAME=...")
    parser.add_argument("--requests", choices=("hit", "miss"), default="hit")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    require_wrk()
    key = str(ApiKey.generate())
    target = targets()[0]
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    runs: dict[str, list[tuple[float, float]]] = {config.name: [] for config in args.configs}
    with tempfile.TemporaryDirectory() as folder, backends(Path(folder), TRITON_MODELS) as up:
        gateways = []
        for n, config in enumerate(args.configs):
            url, process = start_gateway(
                f"g{n}", 1, Path(folder), up, key, config.env, source=config.source
            )
            gateways.append((config.name, url, int(str(process.pid))))
        for _, url, _ in gateways:  # warm each one (and fill the cache for hits)
            for _ in range(20):
                httpx.post(url + target.triton_path, content=target.body, headers=auth)
        for round_number in range(args.rounds):
            shift = round_number % len(gateways)
            for name, url, pid in gateways[shift:] + gateways[:shift]:
                time.sleep(0.2)
                run = run_wrk_watching(
                    url + target.triton_path,
                    target.wrk_script(args.requests, auth),
                    args.connections,
                    args.duration,
                    pid,
                )
                runs[name].append((run.wrk.requests_per_s, run.cpu_us_per_request or 0.0))
    first = statistics.median(rate for rate, _ in runs[args.configs[0].name])
    print(
        f"{args.requests}s, {args.connections} connections, {args.rounds} rounds of "
        f"{args.duration:g} s; medians\n"
    )
    print("| configuration | requests/s | vs first | gateway CPU µs/request | each round |")
    print("|---|---:|---:|---:|---|")
    for config in args.configs:
        measured = runs[config.name]
        rate = statistics.median(r for r, _ in measured)
        cpu = statistics.median(c for _, c in measured)
        rounds = " ".join(f"{r:,.0f}" for r, _ in measured)
        print(f"| {config.name} | {rate:,.0f} | {rate / first:.2f}x | {cpu:,.0f} | {rounds} |")


if __name__ == "__main__":
    main()

"""The load-test and benchmark kit's one entry point: `python -m loadtests SCENARIO [options]`.

    bench     the gateway against direct Triton and the alternatives (`make bench`)
    tracing   what tracing costs, hits and misses (`make bench` runs it after bench)
    load      Locust, step by step up to saturation (`make loadtest`)
    soak      minutes of unique misses: memory levels off within the cache bound (`make soak`)
    ab        gateway configurations or revisions side by side, rounds interleaved
    corpus    re-embedding a corpus with 5 % changed: the per-input cache against a
              whole-request cache and direct Triton
    promote   the hit ratio around a promote, with and without the cache warm-up

Each scenario takes `--help`. The kit they share is `loadtests/kit/`; one-off measurements
behind design decisions live in `loadtests/investigations/` and run as their own modules.
"""

from __future__ import annotations

import importlib
import sys

SCENARIOS = {
    "bench": "loadtests.bench",
    "tracing": "loadtests.tracing_cost",
    "load": "loadtests.run_loadtest",
    "soak": "loadtests.soak",
    "ab": "loadtests.config_ab",
    "corpus": "loadtests.corpus",
    "promote": "loadtests.promote",
}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        return 2
    scenario = importlib.import_module(SCENARIOS[argv[1]])
    sys.argv = [f"python -m loadtests {argv[1]}", *argv[2:]]
    status = scenario.main()
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

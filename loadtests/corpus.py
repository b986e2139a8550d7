"""Re-embedding a corpus: the per-input cache against a whole-request cache and Triton alone.

    .venv/bin/python -m loadtests corpus [--texts 5000] [--changed 0.05] [--batch 64]
                                         [--output docs/benchmarks]

A corpus of `--texts` texts (model_build's held-out and probe texts, sentences of 1 to 60
words in five languages, with numbered variants), embedded by `text_embedding` in batches
of `--batch`, one client:

    pass 1   every text, in a shuffled order, through A: the gateway's /v1/embeddings
    pass 2   `--changed` of the texts changed, all of them reshuffled and cut into batches
             anew, through
               A: the gateway's /v1/embeddings (the per-input cache)
               B: a gateway whose cache keeps whole requests only (per-row caching off for
                  the model: GATEWAY_CACHE_MODELS), through v2 infer; no pass 1 for it, as
                  no reshuffled batch can equal a batch of pass 1 (every one is a miss)
               direct Triton, v2 infer

For each pass 2 it reports the seconds taken and the rows Triton computed (its own inference
statistics for the model); the goal: A computes exactly the changed texts, and is at least
10x faster than direct Triton. It writes `embeddings-cache.md` to `--output`.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from auth import ApiKey
from loadtests.kit.machine import machine
from loadtests.kit.processes import ROOT, backends, start_gateway
from model_build.embedding import read_texts

MODEL = "text_embedding"
MODELS = ["text_tokenizer", "text_encoder", MODEL]
GOAL = 10.0
OURS = "gateway /v1/embeddings (per-input cache)"
WHOLE = "gateway v2, whole-request cache"
DIRECT = "direct Triton, v2"


@dataclass(frozen=True)
class Pass:
    system: str
    seconds: float
    rows: int  # rows Triton computed meanwhile


def corpus(size: int) -> list[str]:
    """`size` distinct texts: the held-out and probe texts, then numbered variants."""
    base = list(dict.fromkeys([*read_texts("heldout.txt"), *read_texts("probes.txt")]))
    return [_variant(base[i % len(base)], i // len(base)) for i in range(size)]


def _variant(text: str, round_number: int) -> str:
    return f"{text} [{round_number}]" if round_number else text


def batches(texts: list[str], size: int, seed: int) -> list[list[str]]:
    order = texts[:]
    random.Random(seed).shuffle(order)
    return [order[i : i + size] for i in range(0, len(order), size)]


def v2_body(texts: list[str]) -> bytes:
    tensor = {"name": "text", "datatype": "BYTES", "shape": [len(texts), 1], "data": texts}
    return orjson.dumps({"inputs": [tensor]})


def rows_computed(triton_url: str) -> int:
    stats = httpx.get(f"{triton_url}/v2/models/{MODEL}/stats", timeout=30).json()
    return sum(int(s["inference_count"]) for s in stats["model_stats"])


@dataclass(frozen=True)
class Target:
    url: str
    openai: bool  # /v1/embeddings, else v2 infer


def run_pass(
    system: str, client: httpx.Client, target: Target, parts: list[list[str]], triton_url: str
) -> Pass:
    rows = rows_computed(triton_url)
    started = time.perf_counter()
    for part in parts:
        if target.openai:
            body = {"model": MODEL, "input": part}
            response = client.post(f"{target.url}/v1/embeddings", json=body)
        else:
            response = client.post(f"{target.url}/v2/models/{MODEL}/infer", content=v2_body(part))
        response.raise_for_status()
    seconds = time.perf_counter() - started
    return Pass(system, seconds, rows_computed(triton_url) - rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--changed", type=float, default=0.05)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    texts = corpus(args.texts)
    changed = random.Random(1).sample(range(len(texts)), round(len(texts) * args.changed))
    second = texts[:]
    for index in changed:
        second[index] = f"{second[index]} (revised)"
    if len(set(second) - set(texts)) != len(changed):
        raise SystemExit("the corpus has repeated texts: its changes would not all be new")
    key = str(ApiKey.generate())
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    whole = {"GATEWAY_CACHE_MODELS": orjson.dumps({MODEL: {"per_row": False}}).decode()}
    with tempfile.TemporaryDirectory() as folder, backends(Path(folder), MODELS) as services:
        triton_url = services[0].endpoints.http_url
        state = Path(folder)
        per_input = Target(start_gateway("per-input", 1, state, services, key, {})[0], True)
        whole_request = Target(start_gateway("whole", 1, state, services, key, whole)[0], False)
        direct = Target(triton_url, False)
        first, again = batches(texts, args.batch, seed=1), batches(second, args.batch, seed=2)
        with httpx.Client(headers=headers, timeout=300) as client:
            filled = [run_pass(OURS, client, per_input, first, triton_url)]
            results = [
                run_pass(name, client, target, again, triton_url)
                for name, target in ((OURS, per_input), (WHOLE, whole_request), (DIRECT, direct))
            ]
    report = render(args, len(changed), filled, results)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "embeddings-cache.md").write_text(report)
    print(report)


def render(args: argparse.Namespace, changed: int, filled: list[Pass], results: list[Pass]) -> str:
    ours, whole, direct = results
    speedup = direct.seconds / ours.seconds
    facts = machine()
    lines = [
        "# Re-embedding a corpus: the per-input cache",
        "",
        f"`.venv/bin/python -m loadtests corpus --texts {args.texts} --changed {args.changed:g} "
        f"--batch {args.batch}`, {facts['date']}, {facts['cpu']}, {facts['cores']} cores shared "
        "by Triton, Redis, two gateways (one worker each) and the client. One client, "
        f"batches of {args.batch}; `text_embedding` (MiniLM, fp32) on the embedded CPU Triton. "
        "The whole-request cache gets no pass 1: no reshuffled batch can equal one of pass 1.",
        "",
        f"Pass 1 embeds all {args.texts} texts; pass 2 changes {changed} of them "
        f"({args.changed:.0%}), reshuffles all and cuts the batches anew. Triton rows: its own "
        "inference statistics for the model over the pass.",
        "",
        "| pass | system | seconds | Triton rows |",
        "|---|---|---:|---:|",
        *(f"| 1 | {p.system} | {p.seconds:.2f} | {p.rows:,} |" for p in filled),
        *(f"| 2 | {p.system} | {p.seconds:.2f} | {p.rows:,} |" for p in results),
        "",
        f"- Triton rows in pass 2 through the per-input cache: {ours.rows:,}; changed texts: "
        f"{changed:,} ({'equal' if ours.rows == changed else 'NOT equal'}).",
        f"- Pass 2, per-input cache against direct Triton: {speedup:.1f}x faster "
        f"(goal >= {GOAL:g}x: {'met' if speedup >= GOAL else 'missed'}).",
        f"- Against the whole-request cache (every reshuffled batch is new to it): "
        f"{whole.seconds / ours.seconds:.1f}x faster, {whole.rows:,} Triton rows.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

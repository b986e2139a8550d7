"""Per text_encoder version: file size, one-sentence latency, batch throughput, and cosine
to version 1 on the fixed sentence set; in-process ONNX Runtime with the model config's
thread settings (2 intra-op threads).

    .venv/bin/python -m loadtests.investigations.embedding_bench [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import onnxruntime as ort

from model_build.embedding import cosines, encode, tokenize
from model_build.sentences import SENTENCES

REPOSITORY = Path("model_repository") / "text_encoder"


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    one = tokenize([SENTENCES[3]])
    batch = tokenize(list(SENTENCES[:32]))
    reference = encode(REPOSITORY / "1" / "model.onnx", SENTENCES)
    print("| version | file | 1 sentence p50 ms | 32-batch sentences/s | cosine to v1 mean | min |")
    print("|---|---:|---:|---:|---:|---:|")
    for version in ("1", "2"):
        path = REPOSITORY / version / "model.onnx"
        model = session(path)
        for _ in range(10):
            model.run(None, one)
        latencies = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            model.run(None, one)
            latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(max(5, args.repeats // 20)):
            model.run(None, batch)
        rate = 32 * max(5, args.repeats // 20) / (time.perf_counter() - started)
        similarity = cosines(encode(path, SENTENCES), reference)
        print(
            f"| {version} | {path.stat().st_size / 1e6:.1f} MB | "
            f"{statistics.median(latencies) * 1000:.2f} | {rate:,.0f} | "
            f"{similarity.mean():.4f} | {similarity.min():.4f} |"
        )


if __name__ == "__main__":
    main()

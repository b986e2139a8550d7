"""text_encoder v2 (int8) against v1 (fp32) on each text set: the build's parity set, the
calibration set (what the int8 build tuned on), the quality gate's probe set and the
held-out set (neither seen by the build), with the goal on the held-out set.

    .venv/bin/python -m loadtests.investigations.embedding_quality
"""

from __future__ import annotations

from pathlib import Path

from model_build.embedding import read_texts
from model_build.embedding_quality import GOAL_MEAN, GOAL_WORST, measure
from model_build.sentences import SENTENCES

REPOSITORY = Path("model_repository") / "text_encoder"


def main() -> None:
    fp32, int8 = REPOSITORY / "1" / "model.onnx", REPOSITORY / "2" / "model.onnx"
    sets = {
        "build parity set (sentences.py)": list(SENTENCES),
        "calibration (texts/calibration.txt)": read_texts("calibration.txt"),
        "gate probes (texts/probes.txt)": read_texts("probes.txt"),
        "held-out (texts/heldout.txt)": read_texts("heldout.txt"),
    }
    print("| set | texts | mean | 1st percentile | worst | 1-2 words: texts, worst | worst text |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, texts in sets.items():
        f = measure(fp32, int8, texts)
        print(
            f"| {name} | {f.texts:,} | {f.mean:.4f} | {f.p1:.4f} | {f.worst:.4f} | "
            f"{f.short_texts}, {f.short_worst:.4f} | {f.worst_text!r} |"
        )
    print(f"\ngoal on the held-out set: worst >= {GOAL_WORST}, mean >= {GOAL_MEAN}")


if __name__ == "__main__":
    main()

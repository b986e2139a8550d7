"""How close `text_encoder` version 2 (int8) comes to version 1 (fp32) on a text set:
per-text cosine, reported as the mean, the 1st percentile and the worst, also for short
inputs (one or two words) alone, where int8 errors show most."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_build.embedding import cosines, encode

GOAL_WORST, GOAL_MEAN = 0.98, 0.995  # on the held-out set


@dataclass(frozen=True)
class Figures:
    texts: int
    mean: float
    p1: float
    worst: float
    worst_text: str
    short_texts: int
    short_worst: float

    def meets_goal(self) -> bool:
        return self.worst >= GOAL_WORST and self.mean >= GOAL_MEAN


def measure(fp32: Path, int8: Path, texts: list[str]) -> Figures:
    similarity = cosines(encode(int8, texts), encode(fp32, texts))
    short = [i for i, text in enumerate(texts) if len(text.split()) <= 2]
    worst = int(np.argmin(similarity))
    return Figures(
        texts=len(texts),
        mean=float(similarity.mean()),
        p1=float(np.percentile(similarity, 1)),
        worst=float(similarity[worst]),
        worst_text=texts[worst],
        short_texts=len(short),
        short_worst=float(similarity[short].min()) if short else float("nan"),
    )

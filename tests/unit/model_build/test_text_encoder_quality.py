"""The built int8 text encoder holds on text the build never saw, and the text sets that
build it (parity, calibration), gate it (probes) and measure it (held-out) are kept apart."""

from __future__ import annotations

from model_build import build_repository
from model_build.embedding import ENCODER, read_texts
from model_build.embedding_quality import GOAL_MEAN, GOAL_WORST, measure
from model_build.sentences import SENTENCES
from tests.support.data import REPOSITORY


def test_the_text_sets_are_disjoint_and_the_held_out_set_is_large_and_varied() -> None:
    heldout = read_texts("heldout.txt")
    tuned = {t.lower() for t in (*SENTENCES, *read_texts("calibration.txt"))}
    probes = {t.lower() for t in read_texts("probes.txt")}
    held = {t.lower() for t in heldout}
    assert not tuned & probes, sorted(tuned & probes)[:3]
    assert not tuned & held, sorted(tuned & held)[:3]
    assert not probes & held, sorted(probes & held)[:3]
    assert len(probes) >= 300
    assert len(heldout) >= 1000
    assert sum(len(t.split()) == 1 for t in heldout) >= 50  # one-word inputs
    assert sum(len(t.split()) >= 20 for t in heldout) >= 50  # and long ones
    assert sum(any("\u0430" <= ch <= "\u044f" for ch in t) for t in heldout) >= 100  # Russian
    assert sum(any(ch in "\u00e4\u00f6\u00fc\u00df" for ch in t) for t in heldout) >= 50  # German


def test_int8_meets_the_goal_on_the_held_out_set() -> None:
    build_repository(REPOSITORY)  # the project's copy (no-op when built)
    directory = REPOSITORY / ENCODER
    figures = measure(
        directory / "1" / "model.onnx", directory / "2" / "model.onnx", read_texts("heldout.txt")
    )
    assert figures.worst >= GOAL_WORST, figures
    assert figures.mean >= GOAL_MEAN, figures
    assert figures.meets_goal()

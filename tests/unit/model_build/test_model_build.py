"""The committed build code makes byte-identical, accurate models."""

from __future__ import annotations

import hashlib
from pathlib import Path

from model_build import build_repository
from tests.support.data import REPOSITORY


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_deterministic_accurate_and_skips_what_exists(tmp_path: Path) -> None:
    build_repository(REPOSITORY)  # the project's copy (no-op when built)
    fresh = build_repository(tmp_path)
    assert {(b.model, b.version) for b in fresh} == {
        ("tabular_classifier", 1),
        ("tabular_classifier", 2),
        ("digits_classifier", 1),
        ("digits_classifier", 2),
        ("text_encoder", 1),
        ("text_encoder", 2),
    }
    for built in fresh:
        assert built.built and built.quality is not None
        threshold = {
            "held-out accuracy": 0.93,
            "min cosine to ST": 0.9999,
            "min cosine to v1": 0.98,
        }
        assert built.quality >= threshold[built.quality_name], built
        reference = REPOSITORY / built.model / str(built.version) / "model.onnx"
        assert digest(built.path) == digest(reference), f"{built.model} v{built.version} differs"
    for model in ("tabular_classifier", "digits_classifier", "text_encoder"):
        assert (tmp_path / model / "probes.json").read_bytes() == (
            REPOSITORY / model / "probes.json"
        ).read_bytes()
    assert (tmp_path / "text_tokenizer" / "1" / "tokenizer.json").exists()
    assert (tmp_path / "text_embedding" / "1").is_dir()
    again = build_repository(tmp_path)
    assert not any(b.built for b in again)

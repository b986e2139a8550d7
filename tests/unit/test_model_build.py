"""The committed build code makes byte-identical, accurate models."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gateway.model_build import build_repository
from tests.support.data import REPOSITORY


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_deterministic_and_skips_what_exists(tmp_path: Path) -> None:
    build_repository(REPOSITORY)  # the project's copy (no-op when built)
    fresh = build_repository(tmp_path)
    assert {(b.model, b.version) for b in fresh} == {
        ("tabular_classifier", 1),
        ("tabular_classifier", 2),
        ("digits_classifier", 1),
        ("digits_classifier", 2),
    }
    for built in fresh:
        assert built.built
        assert built.accuracy is not None and built.accuracy > 0.93
        reference = REPOSITORY / built.model / str(built.version) / "model.onnx"
        assert digest(built.path) == digest(reference), f"{built.model} v{built.version} differs"
    again = build_repository(tmp_path)
    assert not any(b.built for b in again)

"""The int8 calibration set, `texts/calibration.txt`: what the int8 build of `text_encoder`
measures activation ranges on and what chose the layers kept in fp32. Drawn from sources
the probe and held-out sets (Debian fortunes) do not use: the build's parity sentences,
150 whole words of the model's own vocabulary (one-word inputs) and 250 first sentences of
Python standard-library docstrings. Committed, so the build does not depend on the
Python version; regenerate with

    .venv/bin/python -m model_build.calibration_texts
"""

from __future__ import annotations

import hashlib
import importlib
import inspect

import orjson

from model_build.embedding import TEXTS, weights
from model_build.sentences import SENTENCES

MODULES = (
    *("json", "os", "pathlib", "collections", "functools", "itertools", "logging", "argparse"),
    *("subprocess", "threading", "asyncio", "email", "http.client", "urllib.request"),
    *("statistics", "decimal", "fractions", "random", "string", "textwrap", "csv", "sqlite3"),
    *("zipfile", "tarfile", "shutil"),
)


def _rank(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def vocabulary_words(count: int = 150) -> list[str]:
    vocabulary = orjson.loads((weights() / "tokenizer.json").read_bytes())["model"]["vocab"]
    return sorted((w for w in vocabulary if w.isalpha() and len(w) >= 2), key=_rank)[:count]


def docstring_sentences(count: int = 250) -> list[str]:
    found = set()
    for name in MODULES:
        for value in vars(importlib.import_module(name)).values():
            doc = inspect.getdoc(value) if callable(value) else None
            if doc:
                first = " ".join(doc.split("\n\n")[0].split())
                if 3 <= len(first.split()) <= 50 and "(" not in first[:20]:
                    found.add(first)
    return sorted(found, key=_rank)[:count]


def main() -> None:
    texts = [*SENTENCES, *vocabulary_words(), *docstring_sentences()]
    (TEXTS / "calibration.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    print(f"calibration.txt: {len(texts)} texts")


if __name__ == "__main__":
    main()

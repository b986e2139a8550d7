"""Real text that no build step tunes on: sentences, fragments and single words drawn from
the Debian `fortunes` packages (English, German, Spanish, Italian, Russian).

It feeds two committed, disjoint files under `texts/`, split by a hash of each text:
    heldout.txt   the held-out set the int8 encoder is measured on (`loadtests.embedding_quality`)
    probes.txt    the quality gate's probe set for `text_encoder` (`probes.json`)
The build's parity set (`sentences.py`) and the int8 calibration set (`calibration.py`)
come from elsewhere. Regenerate (after `apt-get install fortunes fortunes-de fortunes-es
fortunes-it fortunes-ru`):

    .venv/bin/python -m model_build.fortune_texts
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
TEXTS = Path(__file__).parent / "texts"
LANGUAGES = {
    "en": FORTUNES,
    "de": FORTUNES / "de",
    "es": FORTUNES / "es",
    "it": FORTUNES / "it",
    "ru": FORTUNES / "ru",
}
SKIPPED = {"art", "ascii-art", "asciiart", "banner", "off"}
PER_LANGUAGE = {"en": 560, "de": 300, "es": 250, "it": 250, "ru": 240}
SHORT_SHARE = 0.2  # of each language's picks: one- and two-word inputs
PROBE_SHARE = 4  # texts whose hash is 0..3 mod 16 go to the probe set, the rest are held out

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\w[\w'\u2019-]*", re.UNICODE)


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.iterdir()):
        plain = path.is_file() and not path.is_symlink() and path.suffix not in {".dat", ".u8"}
        if plain and path.name.split(".")[0] not in SKIPPED:
            yield path


def _entries(path: Path) -> Iterator[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return
    for entry in text.split("\n%\n"):
        if "  " in entry.strip() and entry.count("\n") > 3:  # drawings, tables, verse layouts
            continue
        yield " ".join(entry.split())


def _sentences(entry: str) -> Iterator[str]:
    for sentence in _SENTENCE_END.split(entry):
        words = sentence.split()
        letters = sum(ch.isalpha() for ch in sentence)
        if 3 <= len(words) <= 60 and letters >= 0.6 * len(sentence) and "--" not in sentence:
            yield sentence


def _rank(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def texts_of(language: str) -> list[str]:
    """The language's picks: whole sentences of every length, plus one- and two-word inputs
    cut from other sentences; the same picks on every machine with the same packages."""
    entries = (e for path in _files(LANGUAGES[language]) for e in _entries(path))
    unique = {s for e in entries for s in _sentences(e)}
    sentences = sorted(sorted(unique), key=_rank)
    wanted = PER_LANGUAGE[language]
    short_count = int(wanted * SHORT_SHARE)
    picked = sentences[: wanted - short_count]
    short: list[str] = []
    seen = set(picked)
    for sentence in sentences[wanted:]:
        words = _WORD.findall(sentence)
        if not words:
            continue
        count = 1 + _rank(sentence) % 2
        fragment = " ".join(words[:count])
        if fragment.lower() not in seen:
            seen.add(fragment.lower())
            short.append(fragment)
        if len(short) == short_count:
            break
    return picked + short


def split() -> tuple[list[str], list[str]]:
    """(held-out texts, probe texts), disjoint."""
    heldout: list[str] = []
    probes: list[str] = []
    for language in LANGUAGES:
        for text in texts_of(language):
            (probes if _rank("probe:" + text) % 16 < PROBE_SHARE else heldout).append(text)
    return heldout, probes


def main() -> None:
    heldout, probes = split()
    TEXTS.mkdir(exist_ok=True)
    for name, texts in (("heldout.txt", heldout), ("probes.txt", probes)):
        (TEXTS / name).write_text("".join(text + "\n" for text in texts), encoding="utf-8")
        print(f"{name}: {len(texts)} texts")


if __name__ == "__main__":
    main()

"""The committed locks (requirements/*.txt) as the tests read them."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.utils import canonicalize_name

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements"
LOCKS = ("dev.txt", "runtime.txt", "triton.txt", "uv.txt", "checkov.txt", "bentoml.txt")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked(lock: Path) -> dict[str, str]:
    """Each pinned package (canonical name) and its version."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def hashes(lock: Path) -> dict[str, int]:
    """How many file hashes each pinned package carries."""
    counts: dict[str, int] = {}
    current = ""
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match[1])
            counts[current] = 0
        if current and "--hash=sha256:" in line:
            counts[current] += 1
    return counts

"""Keeps each committed lock (requirements/*.txt) tied to what it was made from.

    python3 requirements/lockfile.py stamp LOCK SOURCE...   after pip-compile wrote LOCK
    python3 requirements/lockfile.py check LOCK...          before installing LOCK

`stamp` writes one line per source into the lock's header: the source's path and a
SHA-256 of what in it decides the lock. For pyproject.toml that is the dependency tables
only (requires-python, dependencies, optional-dependencies, build-system.requires), so a
change to a linter's settings does not ask for a new lock; for any other source (a `.in`
file) it is the whole file. `check` recomputes each and fails with one line naming the
first source that changed since, and the command that brings the lock up to date.

Standard library only: it runs before the virtual environment exists.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

MARK = "# locked from: "
REMEDY = "run `make lock` (then `make test`) and commit the lock with it"


def digest(source: Path) -> str:
    """What in `source` decides the lock, hashed."""
    if source.name != "pyproject.toml":
        return hashlib.sha256(source.read_bytes()).hexdigest()
    document = tomllib.loads(source.read_text())
    project = document.get("project", {})
    decisive = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system": document.get("build-system", {}).get("requires", []),
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()


def stamp(lock: Path, sources: list[Path]) -> None:
    """Record `sources` (paths relative to the working directory) in `lock`'s header."""
    lines = [line for line in lock.read_text().splitlines() if not line.startswith(MARK)]
    marks = [f"{MARK}{source.as_posix()} sha256={digest(source)}" for source in sources]
    # After pip-compile's own header (its leading comment block), before the pins.
    end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    lock.write_text("\n".join([*lines[:end], *marks, *lines[end:]]) + "\n")


def problem(lock: Path) -> str | None:
    """Why `lock` cannot be installed as it is, or None."""
    if not lock.exists():
        return f"{lock} is missing: {REMEDY}"
    recorded = [
        line[len(MARK) :] for line in lock.read_text().splitlines() if line.startswith(MARK)
    ]
    if not recorded:
        return f"{lock} records no source: {REMEDY}"
    for entry in recorded:
        path, _, expected = entry.rpartition(" sha256=")
        source = Path(path)
        if not source.exists():
            return f"{lock} was made from {path}, which is gone: {REMEDY}"
        if digest(source) != expected:
            what = "the dependencies in " if source.name == "pyproject.toml" else ""
            return f"{lock} is out of date: {what}{path} changed since it was made; {REMEDY}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[1] == "stamp":
        stamp(Path(argv[2]), [Path(source) for source in argv[3:]])
        return 0
    if len(argv) >= 3 and argv[1] == "check":
        for lock in argv[2:]:
            reason = problem(Path(lock))
            if reason is not None:
                print(reason, file=sys.stderr)
                return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The committed locks: made from pyproject.toml and requirements/*.in as they are now,
complete, hashed, consistent with each other and with the environment the tests run in."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import distributions

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.locks import LOCKS, REQUIREMENTS, hashes, locked

ROOT = REQUIREMENTS.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
BUILD = [Requirement(spec) for spec in PYPROJECT["build-system"]["requires"]]
LOCKFILE = REQUIREMENTS / "lockfile.py"


def check(*locks: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LOCKFILE), "check", *locks],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_lock_was_made_from_its_sources_as_they_are_now() -> None:
    result = check(*(f"requirements/{lock}" for lock in LOCKS))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_carries_hashes(lock: str) -> None:
    counts = hashes(REQUIREMENTS / lock)
    assert counts
    assert not [name for name, count in counts.items() if count == 0]


def requirements(*extras: str) -> list[Requirement]:
    specs = list(PROJECT["dependencies"])
    for extra in extras:
        specs += PROJECT["optional-dependencies"][extra]
    return [Requirement(spec) for spec in specs]


def unmet(lock: str, wanted: list[Requirement]) -> list[str]:
    pins = locked(REQUIREMENTS / lock)
    return [
        str(requirement)
        for requirement in wanted
        if (requirement.marker is None or requirement.marker.evaluate())
        and not requirement.specifier.contains(
            pins.get(canonicalize_name(requirement.name), "0.dev0"), prereleases=True
        )
    ]


def test_the_development_lock_meets_every_requirement_of_every_extra_and_the_build() -> None:
    assert unmet("dev.txt", requirements(*PROJECT["optional-dependencies"]) + BUILD) == []


def test_the_runtime_lock_meets_the_packages_requirements_and_its_build() -> None:
    assert unmet("runtime.txt", requirements() + BUILD) == []


@pytest.mark.parametrize("lock", ["runtime.txt", "triton.txt", "triton-cpu.txt", "uv.txt"])
def test_image_locks_pin_the_versions_the_tests_run_with(lock: str) -> None:
    dev = locked(REQUIREMENTS / "dev.txt")
    differs = {name: v for name, v in locked(REQUIREMENTS / lock).items() if dev.get(name) != v}
    assert differs == {}


def test_the_environment_running_the_tests_is_the_development_lock() -> None:
    pins = locked(REQUIREMENTS / "dev.txt")
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in distributions()
        if canonicalize_name(dist.metadata["Name"]) != "gateway"
    }
    assert {name: v for name, v in installed.items() if pins.get(name) != v} == {}
    assert set(pins) - set(installed) == set()

"""`python -m loadtests SCENARIO`: every scenario it names runs through its `main`."""

from __future__ import annotations

import importlib
import subprocess
import sys

from loadtests.__main__ import SCENARIOS


def test_every_scenario_has_a_main() -> None:
    for module in SCENARIOS.values():
        assert callable(importlib.import_module(module).main), module


def test_an_unknown_scenario_lists_the_scenarios() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtests", "nope"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert all(name in result.stderr for name in SCENARIOS)

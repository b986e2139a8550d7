"""Waiting, bounded, for something that happens after the request that caused it."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(condition: Callable[[], bool], timeout_s: float = 10, what: str = "") -> None:
    """Return once `condition()` holds; fail the test if it does not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what or 'condition'} not met in {timeout_s} s"
        time.sleep(0.1)

"""What a running `gateway up` says of itself, read from its `<state-dir>/stack.json`.

    stack_value(state_dir, name)   one URL of the stack ("gateway", "redis", ...), for the
                                   CLI to find a running stack
    embedded_backends(state_dir)   the supervised backends' states, which the supervisor
                                   (`devstack.supervisor`) writes there; the workers
                                   read them for `/admin/backends` and
                                   `gateway_backend_restarts_total`

Without `gateway up` (external Triton and Redis) there is no such file and nothing to read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

STACK_FILE = "stack.json"


def _stack(state_dir: Path) -> dict[str, Any]:
    """The stack file's document; {} when no `gateway up` runs in `state_dir`."""
    try:
        document = json.loads((state_dir / STACK_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def stack_value(state_dir: Path, name: str) -> str | None:
    """A text value of the stack file (e.g. the URL of "gateway" or "redis"), or None."""
    value = _stack(state_dir).get(name)
    return value if isinstance(value, str) else None


def embedded_backends(state_dir: Path) -> list[dict[str, Any]]:
    """The supervised backends' states; [] when no `gateway up` runs in `state_dir`."""
    backends = _stack(state_dir).get("backends")
    return backends if isinstance(backends, list) else []


class BackendRestarts(Collector):
    """`gateway_backend_restarts_total{backend}`, read from stack.json at each scrape."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "gateway_backend_restarts",
            "Restarts of an embedded backend by `gateway up`'s supervisor",
            labels=["backend"],
        )
        for backend in embedded_backends(self._state_dir):
            family.add_metric([str(backend.get("name"))], float(backend.get("restarts", 0)))
        yield family

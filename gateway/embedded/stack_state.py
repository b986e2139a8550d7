"""What a running `gateway up` says of its embedded backends, read from its stack.json.

The supervisor (`gateway.embedded.supervisor`) runs in `gateway up`'s process and writes
the backends' states there; the gateway's workers read them for `/admin/backends` and for
`gateway_backend_restarts_total`. Without `gateway up` (external Triton and Redis) there is
no such file and nothing to report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

STACK_FILE = "stack.json"


def embedded_backends(state_dir: Path) -> list[dict[str, Any]]:
    """The supervised backends' states; [] when no `gateway up` runs in `state_dir`."""
    try:
        document = json.loads((state_dir / STACK_FILE).read_text())
    except (OSError, ValueError):
        return []
    backends = document.get("backends") if isinstance(document, dict) else None
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

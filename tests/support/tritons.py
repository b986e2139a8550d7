"""Several real Tritons on one model repository, as replicas on a shared volume."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack import EmbeddedTriton


@contextmanager
def running_tritons(
    repository: Path,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    models: Sequence[str],
    count: int = 2,
) -> Iterator[list[EmbeddedTriton]]:
    """`count` Tritons serving `models` from `repository`; all stopped afterwards."""
    servers = [
        EmbeddedTriton(repository, tmp_path_factory.mktemp(f"{name}-{n}"), models=list(models))
        for n in range(count)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def triton_urls(tritons: Sequence[EmbeddedTriton]) -> str:
    """GATEWAY_TRITON_URLS for `tritons`, each with its metrics port."""
    return ",".join(f"{t.endpoints.http_url}#metrics={t.metrics_port}" for t in tritons)

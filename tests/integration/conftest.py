"""Real services for the integration tests, started once per session on free ports.

Nothing here is mocked: a real `tritonserver` serves `model_repository/` and a real
`redis-server` runs from Debian's package; both are stopped at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import EmbeddedRedis, EmbeddedTriton
from gateway.settings import Settings
from model_build import build_repository
from tests.support.data import REPOSITORY
from tests.support.keys import ADMIN_KEY
from tests.support.server import running_gateway


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def model_repository() -> Path:
    build_repository(REPOSITORY)  # no-op when `make models` already built it
    return REPOSITORY


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def triton(
    tmp_path_factory: pytest.TempPathFactory, model_repository: Path
) -> Iterator[EmbeddedTriton]:
    server = EmbeddedTriton(model_repository, tmp_path_factory.mktemp("triton"))
    server.start()
    yield server
    server.stop()


def gateway_settings(triton: EmbeddedTriton, redis: EmbeddedRedis, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "triton_url": triton.endpoints.http_url,
        "redis_url": redis.url,
        "max_body_bytes": 1_000_000,
        "triton_timeout_s": 10.0,
        "admin_key": ADMIN_KEY,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def gateway_url(triton: EmbeddedTriton, redis_server: EmbeddedRedis) -> Iterator[str]:
    with running_gateway(gateway_settings(triton, redis_server)) as url:
        yield url

"""Redis stopped mid-run: recently verified keys keep working, unknown keys get 503, the
rate limit falls back to the process, and service is normal again once Redis is back.

This module runs its own Redis (with AOF, so the keys are still there after a restart).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from auth import ApiKey
from gateway.embedded import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.admin import create_key, infer_tabular
from tests.support.server import running_gateway


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("outage-redis"), persistent=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(triton: EmbeddedTriton, own_redis: EmbeddedRedis) -> Iterator[str]:
    settings = gateway_settings(
        triton,
        own_redis,
        auth_remember_s=0.3,
        auth_stale_window_s=60,
        redis_breaker_reset_s=0.5,
        retry_after_s=2,
    )
    with running_gateway(settings) as url:
        yield url


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def degraded(gateway: str, dependency: str) -> float:
    text = httpx.get(f"{gateway}/metrics").text
    match = re.search(rf'^gateway_degraded{{dependency="{dependency}"}} (\S+)$', text, re.M)
    assert match, text
    return float(match.group(1))


def test_redis_outage_and_recovery(
    gateway: str, own_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    _, used = create_key(gateway, models=["*"])
    _, unused = create_key(gateway, models=["*"])
    _, limited = create_key(gateway, models=["*"], rate_limit_per_second=0.2, burst=1)
    assert infer_tabular(gateway, bearer(used)).status_code == 200
    assert infer_tabular(gateway, bearer(limited)).status_code == 200
    assert infer_tabular(gateway, bearer(limited)).status_code == 429  # Redis's limiter

    caplog.set_level(logging.INFO)
    own_redis.stop()
    time.sleep(0.4)  # past auth_remember_s: the gateway must go to Redis and fail

    for _ in range(5):
        assert infer_tabular(gateway, bearer(used)).status_code == 200
    unknown = infer_tabular(gateway, bearer(unused))
    assert unknown.status_code == 503 and unknown.headers["retry-after"] == "2"
    assert "retry" in unknown.json()["error"]
    assert infer_tabular(gateway, bearer(str(ApiKey.generate()))).status_code == 503
    assert infer_tabular(gateway, bearer("gwk_malformed")).status_code == 401  # no lookup needed
    # The per-process limiter takes over: a fresh budget of one, then 429.
    assert infer_tabular(gateway, bearer(limited)).status_code == 200
    assert infer_tabular(gateway, bearer(limited)).status_code == 429
    assert degraded(gateway, "key_store") == 1
    assert degraded(gateway, "key_store_circuit") == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("key store unavailable" in m for m in warnings) == 1  # once per state change

    own_redis.start()  # same port, same data (AOF)
    deadline = time.monotonic() + 10
    while infer_tabular(gateway, bearer(unused)).status_code != 200:
        assert time.monotonic() < deadline, "the gateway did not recover"
        time.sleep(0.2)
    assert infer_tabular(gateway, bearer(used)).status_code == 200
    assert degraded(gateway, "key_store") == 0
    assert any("available again" in r.getMessage() for r in caplog.records)

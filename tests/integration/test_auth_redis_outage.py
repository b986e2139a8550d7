"""Redis stopped mid-run: recently verified keys keep working, unknown keys get 503, the
rate limit falls back to the process, and service is normal again once Redis is back.

This module runs its own Redis (with AOF, so the keys are still there after a restart).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from auth import ApiKey
from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.admin import create_key, infer_tabular
from tests.support.data import tabular_body
from tests.support.keys import auth_headers
from tests.support.polling import eventually
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


def test_a_hung_redis_delays_no_request_past_its_deadline_and_caching_resumes(
    gateway: str, own_redis: EmbeddedRedis
) -> None:
    """Redis SIGSTOPped (alive, silent): requests still answer, none waiting much past the
    Redis deadline; after SIGCONT the cache writes to Redis again by itself."""
    _, key = create_key(gateway, models=["*"])
    # Remembered from now on (right after the restart in the test before: the gateway's
    # pooled Redis connections from before it reconnect at once).
    assert infer_tabular(gateway, bearer(key)).status_code == 200
    store = redis.Redis.from_url(own_redis.url)
    assert own_redis.pid is not None
    os.kill(own_redis.pid, signal.SIGSTOP)
    try:
        slowest = 0.0
        for n in range(20):
            started = time.monotonic()
            response = tabular_with(gateway, bearer(key), 100.0 + n)  # new inputs: misses
            slowest = max(slowest, time.monotonic() - started)
            assert response.status_code == 200, response.text
        # Redis calls have a 0.25 s deadline and a breaker; a miss makes a few of them.
        assert slowest < 2.0, slowest
    finally:
        os.kill(own_redis.pid, signal.SIGCONT)

    pattern = "gateway:cache:tabular_classifier:*"
    before = set(store.scan_iter(match=pattern))

    def cached_in_redis() -> bool:
        value = 500.0 + time.monotonic() % 1000  # a new input each try
        assert tabular_with(gateway, bearer(key), value).status_code == 200
        return bool(set(store.scan_iter(match=pattern)) - before)

    eventually(cached_in_redis, timeout_s=20, what="caching in Redis resumes")


def tabular_with(gateway: str, headers: dict[str, str], value: float) -> httpx.Response:
    return httpx.post(
        f"{gateway}/v2/models/tabular_classifier/infer",
        json=tabular_body(value),
        headers=headers,
        timeout=30,
    )


def test_a_gateway_started_before_its_redis_gets_its_admin_key_once_redis_is_up(
    triton: EmbeddedTriton, tmp_path_factory: pytest.TempPathFactory
) -> None:
    late = EmbeddedRedis(tmp_path_factory.mktemp("late-redis"), persistent=False)
    settings = gateway_settings(triton, late, redis_breaker_reset_s=0.5)
    with running_gateway(settings) as url:  # ready: Triton can answer
        assert infer_tabular(url, auth_headers()).status_code == 503  # no key store yet
        late.start()
        try:
            eventually(
                lambda: infer_tabular(url, auth_headers()).status_code == 200,
                timeout_s=30,
                what="the admin key works once Redis is up",
            )
        finally:
            late.stop()

"""Redis comes back empty (FLUSHALL, a replica promoted without data): authentication is
in an outage, not refusing every key. Remembered keys keep working, others get 503 (not
401), the event is logged and metered; `gateway keys import` of an earlier export brings
every key back."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.integration.test_keys_cli import gateway_keys
from tests.support.admin import create_key, infer_tabular
from tests.support.keys import auth_headers
from tests.support.metrics import value
from tests.support.polling import eventually
from tests.support.server import running_gateway

REMEMBER_S = 1.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", persistent=False)
    server.start()
    yield server
    server.stop()


def test_a_flushed_store_keeps_remembered_keys_and_a_restore_brings_all_back(
    triton: EmbeddedTriton,
    own_redis: EmbeddedRedis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = gateway_settings(triton, own_redis, auth_remember_s=REMEMBER_S)
    with running_gateway(settings) as url:
        _, used = create_key(url, name="in use", models=["*"])
        _, idle = create_key(url, name="idle", models=["*"])
        in_use = {"Authorization": f"Bearer {used}"}
        assert infer_tabular(url, in_use).status_code == 200  # remembered from now on
        backup = tmp_path / "keys.jsonl"
        exported = gateway_keys(own_redis, "export", str(backup))
        assert exported.returncode == 0, exported.stderr
        assert backup.stat().st_mode & 0o077 == 0 and used not in backup.read_text()

        with caplog.at_level(logging.ERROR, logger="auth.authenticator"):
            redis.Redis.from_url(own_redis.url).flushall()
            time.sleep(REMEMBER_S * 1.5)  # past remembering: the store is asked again
            assert infer_tabular(url, in_use).status_code == 200  # remembered, degraded
            refused = infer_tabular(url, {"Authorization": f"Bearer {idle}"})
            assert refused.status_code == 503, refused.text  # cannot be checked, not "invalid"
        assert "the key store's data is gone" in caplog.text
        metrics = httpx.get(f"{url}/metrics").text
        assert value(metrics, "gateway_degraded", dependency="key_store") == 1

        restored = gateway_keys(own_redis, "import", str(backup))
        assert restored.returncode == 0 and "imported" in restored.stdout, restored.stderr

        def idle_key_works() -> bool:
            return infer_tabular(url, {"Authorization": f"Bearer {idle}"}).status_code == 200

        eventually(idle_key_works, timeout_s=30, what="the idle key works after the import")
        metrics = httpx.get(f"{url}/metrics").text
        assert value(metrics, "gateway_degraded", dependency="key_store") == 0


def test_a_full_store_is_named_when_a_change_cannot_be_made(
    triton: EmbeddedTriton, own_redis: EmbeddedRedis
) -> None:
    with running_gateway(gateway_settings(triton, own_redis)) as url:
        key_id, _ = create_key(url, name="to revoke", models=["*"])
        client = redis.Redis.from_url(own_redis.url)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(int(client.info("memory")["used_memory"])))
        with contextlib.suppress(redis.exceptions.OutOfMemoryError):
            client.set("ballast", b"x" * 100_000)  # past maxmemory now
        try:
            refused = httpx.delete(f"{url}/admin/keys/{key_id}", headers=auth_headers())
            assert refused.status_code == 503, refused.text
            assert "the key store is full (Redis reached its maxmemory)" in refused.json()["error"]
        finally:
            client.config_set("maxmemory", "0")
        revoked = httpx.delete(f"{url}/admin/keys/{key_id}", headers=auth_headers())
        assert revoked.status_code == 200, revoked.text

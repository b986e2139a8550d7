"""A key's text, or its secret part, appears nowhere in Redis or in the logs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import httpx
import pytest
import redis

from auth import ApiKey
from devstack import EmbeddedRedis
from tests.support.admin import create_key, infer_tabular
from tests.support.data import ROOT
from tests.support.keys import ADMIN_KEY, auth_headers


def everything_in(client: redis.Redis) -> bytes:
    """Every key name and value in Redis, whatever their types."""
    dump = []
    for name in client.scan_iter(count=1000):
        dump.append(name)
        kind = client.type(name)
        if kind == b"string":
            dump.append(client.get(name) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(name).items():
                dump += [field, value]
        elif kind == b"set":
            dump += list(client.smembers(name))
        elif kind == b"list":
            dump += client.lrange(name, 0, -1)
        elif kind == b"zset":
            dump += client.zrange(name, 0, -1)
    return b"\n".join(dump)


def test_no_key_or_secret_in_redis_or_logs(
    gateway_url: str, redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key_id, key = create_key(gateway_url, models=["tabular_*"], rate_limit_per_second=100)
    assert infer_tabular(gateway_url, {"Authorization": f"Bearer {key}"}).status_code == 200
    assert infer_tabular(gateway_url, {"X-API-Key": key}).status_code == 200
    wrong = str(ApiKey(key_id, ApiKey.generate().secret))
    assert infer_tabular(gateway_url, {"Authorization": f"Bearer {wrong}"}).status_code == 401
    httpx.get(f"{gateway_url}/v2/models/digits_classifier", headers={"X-API-Key": key})
    rotated = httpx.post(f"{gateway_url}/admin/keys/{key_id}/rotate", headers=auth_headers()).json()
    httpx.delete(f"{gateway_url}/admin/keys/{key_id}", headers=auth_headers())
    env = {**os.environ, "GATEWAY_REDIS_URL": redis_server.url}
    created = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "create", "--name", "cli", "--model", "*"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cli_key = next(line.split('"')[3] for line in created.stdout.splitlines() if '"key"' in line)

    secrets = [key, rotated["key"], cli_key, ADMIN_KEY, wrong]
    parts = [ApiKey.parse(s).secret for s in secrets]
    stored = everything_in(redis.Redis.from_url(redis_server.url))
    logged = caplog.text
    for secret in secrets + parts:
        assert secret.encode() not in stored
        assert secret not in logged

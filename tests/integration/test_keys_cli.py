"""`gateway keys ...` against the real key store, used by the real gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from auth import ApiKey
from devstack import EmbeddedRedis
from tests.support.admin import infer_tabular
from tests.support.data import ROOT


def gateway_keys(redis_server: EmbeddedRedis, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_REDIS_URL": redis_server.url}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "keys", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_generate_prints_a_well_formed_key_and_stores_nothing(redis_server: EmbeddedRedis) -> None:
    before = gateway_keys(redis_server, "list").stdout
    generated = gateway_keys(redis_server, "generate")
    assert generated.returncode == 0
    key = ApiKey.parse(generated.stdout.strip())
    assert key.id not in gateway_keys(redis_server, "list").stdout
    assert gateway_keys(redis_server, "list").stdout == before


def test_create_list_rotate_revoke(gateway_url: str, redis_server: EmbeddedRedis) -> None:
    created = gateway_keys(
        redis_server, "create", "--name", "cli-team", "--model", "tabular_*", "--rate", "50"
    )
    assert created.returncode == 0, created.stderr
    document = json.loads(created.stdout)
    key_id, key = document["id"], document["key"]
    assert document["rate_limit_per_second"] == 50 and document["models"] == ["tabular_*"]
    assert infer_tabular(gateway_url, {"Authorization": f"Bearer {key}"}).status_code == 200
    assert (
        httpx.get(
            f"{gateway_url}/v2/models/digits_classifier", headers={"Authorization": f"Bearer {key}"}
        ).status_code
        == 403
    )

    listed = gateway_keys(redis_server, "list").stdout
    assert key_id in listed and "cli-team" in listed and key.split("_")[2] not in listed

    rotated = json.loads(gateway_keys(redis_server, "rotate", key_id, "--overlap", "3600").stdout)
    assert rotated["replaces"]["id"] == key_id
    assert (
        infer_tabular(gateway_url, {"Authorization": f"Bearer {rotated['key']}"}).status_code == 200
    )

    revoked = gateway_keys(redis_server, "revoke", key_id)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"] is not None
    deadline = time.monotonic() + 10  # other processes notice within GATEWAY_AUTH_REMEMBER_S
    while infer_tabular(gateway_url, {"Authorization": f"Bearer {key}"}).status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.25)

    missing = gateway_keys(redis_server, "revoke", "nope")
    assert missing.returncode == 1 and "nope" in missing.stderr

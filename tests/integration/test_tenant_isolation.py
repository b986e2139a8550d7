"""Each tenant has its own cache by default: tenant B's request for tenant A's exact input
is a miss (its X-Cache and timing say nothing of A's). A model shares across tenants only by
its own opt-in, and a key with a private cache never shares."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.admin import create_key
from tests.support.server import running_gateway
from tests.support.tabular import MODEL, body

PATH = f"/v2/models/{MODEL}/infer"


def outcome(url: str, key: str, seed: int, reformatted: bool = False) -> str:
    content = httpx.Request("POST", url, json=body(seed=seed)).content
    if reformatted:  # the same JSON, other bytes
        content = content.replace(b",", b", ")
    response = httpx.post(
        f"{url}{PATH}",
        content=content,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.headers["x-cache"]


@pytest.fixture(scope="module")
def shared(triton: EmbeddedTriton, redis_server: EmbeddedRedis) -> Iterator[str]:
    """A gateway where tabular_classifier opts in to one cache for every tenant."""
    settings = gateway_settings(
        triton, redis_server, cache_models={MODEL: {"shared_across_tenants": True}}
    )
    with running_gateway(settings) as url:
        yield url


def test_another_tenant_gets_a_miss_for_the_same_input(gateway_url: str) -> None:
    _, alice = create_key(gateway_url, name="alice", models=["*"])
    _, bob = create_key(gateway_url, name="bob", models=["*"])
    _, alice_too = create_key(gateway_url, name="alice's other key", tenant="alice", models=["*"])
    assert outcome(gateway_url, alice, seed=101) == "miss"
    assert outcome(gateway_url, alice, seed=101) == "hit"
    assert outcome(gateway_url, bob, seed=101, reformatted=True) == "miss"  # not alice's entry
    assert outcome(gateway_url, bob, seed=101) == "hit"  # bob's own entry now
    assert outcome(gateway_url, alice_too, seed=101) == "hit"  # one tenant, one cache


def test_a_model_that_opts_in_shares_except_with_private_keys(shared: str) -> None:
    _, alice = create_key(shared, name="alice", models=["*"])
    _, bob = create_key(shared, name="bob", models=["*"])
    _, carol = create_key(shared, name="carol", models=["*"], private_cache=True)
    assert outcome(shared, alice, seed=202) == "miss"
    assert outcome(shared, bob, seed=202, reformatted=True) == "hit"  # shared by the model
    assert outcome(shared, carol, seed=202) == "miss"  # a private cache shares nothing

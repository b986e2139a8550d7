"""Locust scenarios against a running gateway (`make loadtest` runs them headless).

    GATEWAY_URL   the gateway (the --host of Locust; default http://127.0.0.1:8000)
    GATEWAY_KEY   an admin key: the test creates its own keys with it at start
    LOADTEST_POOL         size of the input pool of hit-heavy users (default 200)
    LOADTEST_ZIPF         Zipf exponent of their draws (default 1.2: a few hot inputs)
    LOADTEST_RATE_LIMIT   requests/s of the rate-limited key (default 2)
    LOADTEST_USER_RPS     requests/s each user sends at most (default 10), so a step of N
                          users offers N x LOADTEST_USER_RPS; 0 sends back to back

Users (weights in brackets):
    HitHeavy [4]     inputs drawn Zipf-like from a pool: the hit ratio follows pool and exponent
    MissOnly [1]     every input unique: every request a cache miss
    ModelMix [2]     tabular, digits and text_embedding, texts from a pool of queries
    RateLimited [1]  a key limited to LOADTEST_RATE_LIMIT/s, sending twice that: half its
                     requests are 429s, reported under their own name ("... [429 rate
                     limited]"), not as failures

Every request uses Cache-Control defaults and checks the answer's status; the X-Cache
header names each request in the statistics ("infer tabular_classifier [hit]"), so the
report shows hit and miss latencies apart.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from locust import FastHttpUser, User, constant, constant_throughput, events, task
from locust.env import Environment

from loadtests.user_mix import WEIGHTS

ADMIN_KEY = os.environ.get("GATEWAY_KEY", "")
POOL = int(os.environ.get("LOADTEST_POOL", "200"))
ZIPF = float(os.environ.get("LOADTEST_ZIPF", "1.2"))
RATE_LIMIT = float(os.environ.get("LOADTEST_RATE_LIMIT", "2"))
USER_RPS = float(os.environ.get("LOADTEST_USER_RPS", "10"))
QUERIES = [
    "cheap flights to lisbon", "wireless headphones", "how to reset my password",
    "organic green tea", "running shoes size 42", "weather tomorrow", "python asyncio tutorial",
    "best pizza near me", "stainless steel water bottle", "4k monitor 27 inch",
]  # fmt: skip
KEYS: dict[str, str] = {}


@events.test_start.add_listener
def create_keys(environment: Environment, **_: Any) -> None:
    """One ordinary key and one rate-limited key, made through the admin API."""
    import httpx

    if not ADMIN_KEY:
        raise RuntimeError("set GATEWAY_KEY to an admin key")
    host = environment.host or "http://127.0.0.1:8000"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for name, body in (
        ("ordinary", {"name": "loadtest", "models": ["*"]}),
        (
            "limited",
            {
                "name": "loadtest-limited",
                "models": ["*"],
                "rate_limit_per_second": RATE_LIMIT,
                "burst": 1,
            },
        ),
    ):
        response = httpx.post(f"{host}/admin/keys", json=body, headers=headers, timeout=30)
        response.raise_for_status()
        KEYS[name] = response.json()["key"]


def features(seed: int) -> list[float]:
    values: list[float] = np.random.default_rng(seed).random(30, dtype=np.float32).tolist()
    return values


def tabular(data: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": data}]}


def paced(requests_per_second: float) -> Callable[[User], float]:
    """Locust's wait_time for at most this rate per user (none: back to back)."""
    return constant_throughput(requests_per_second) if requests_per_second > 0 else constant(0)


class GatewayUser(FastHttpUser):
    abstract = True
    key_name: ClassVar[str] = "ordinary"
    wait_time = paced(USER_RPS)

    def infer(self, model: str, body: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {KEYS[self.key_name]}"}
        with self.client.post(
            f"/v2/models/{model}/infer",
            json=body,
            headers=headers,
            catch_response=True,
            name=f"infer {model}",
        ) as response:
            if response.status_code == 200:
                response.request_meta["name"] = f"infer {model} [{response.headers.get('x-cache')}]"
                response.success()
            elif response.status_code == 429:
                response.request_meta["name"] = f"infer {model} [429 rate limited]"
                response.success()
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")


class HitHeavy(GatewayUser):
    weight = WEIGHTS["HitHeavy"]

    @task
    def repeated_input(self) -> None:
        index = min(int(np.random.zipf(ZIPF)), POOL) - 1
        self.infer("tabular_classifier", tabular(features(index)))


class MissOnly(GatewayUser):
    weight = WEIGHTS["MissOnly"]

    @task
    def unique_input(self) -> None:
        self.infer("tabular_classifier", tabular(features(random.getrandbits(62))))


class ModelMix(GatewayUser):
    weight = WEIGHTS["ModelMix"]

    @task(3)
    def tabular_model(self) -> None:
        self.infer("tabular_classifier", tabular(features(random.randrange(POOL))))

    @task(2)
    def digits_model(self) -> None:
        image = np.random.default_rng(random.randrange(POOL)).integers(0, 17, 64).astype(float)
        body = {
            "inputs": [
                {"name": "image", "shape": [1, 8, 8], "datatype": "FP32", "data": image.tolist()}
            ]
        }
        self.infer("digits_classifier", body)

    @task(1)
    def text_embedding(self) -> None:
        text = random.choice(QUERIES)
        body = {"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [text]}]}
        self.infer("text_embedding", body)


class RateLimited(GatewayUser):
    weight = WEIGHTS["RateLimited"]
    key_name = "limited"
    wait_time = paced(2 * RATE_LIMIT)

    @task
    def over_the_limit(self) -> None:
        self.infer("tabular_classifier", tabular(features(random.randrange(POOL))))

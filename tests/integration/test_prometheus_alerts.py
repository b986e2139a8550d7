"""The shipped alert rules: every metric they read is one the gateway or Triton exports,
and a real Prometheus (Debian's 2.42), run with the shipped scrape configuration pointed at
a running gateway and Triton, fires the Triton alert when Triton stops.

This module runs its own Triton, so stopping it does not disturb the other tests.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devstack import EmbeddedRedis, EmbeddedTriton
from devstack.ports import free_port
from tests.integration.conftest import gateway_settings
from tests.support.admin import infer_tabular
from tests.support.deploy import DEPLOY, tool
from tests.support.keys import AUTH
from tests.support.metrics import exported_names, value
from tests.support.polling import eventually
from tests.support.server import running_gateway

RULES = DEPLOY / "prometheus" / "rules.yml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
METRIC = re.compile(r"\b((?:gateway|nv)_[a-z_]+)\b")
SYNTHETIC = {"up"}  # series Prometheus makes itself
METRICS_TOKEN = secrets.token_hex(16)  # the deployments' gateway_metrics_token
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


@pytest.fixture(scope="module")
def own_triton(
    tmp_path_factory: pytest.TempPathFactory, model_repository: Path
) -> Iterator[EmbeddedTriton]:
    server = EmbeddedTriton(
        model_repository, tmp_path_factory.mktemp("alerts-triton"), models=["tabular_classifier"]
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(own_triton: EmbeddedTriton, redis_server: EmbeddedRedis) -> Iterator[str]:
    settings = gateway_settings(
        own_triton, redis_server, triton_probe_s=0.25, metrics_token=METRICS_TOKEN
    )
    with running_gateway(settings) as url:
        yield url


def test_every_alert_reads_exported_metrics(gateway: str, own_triton: EmbeddedTriton) -> None:
    refused = httpx.get(f"{gateway}/metrics")  # the deployments set a scrape token
    assert refused.status_code == 401 and "GATEWAY_METRICS_TOKEN" in refused.json()["error"]
    exported = exported_names(httpx.get(f"{gateway}/metrics", headers=SCRAPE).text)
    exported |= exported_names(httpx.get(own_triton.endpoints.metrics_url).text)
    for alert, expression in expressions().items():
        wanted = set(METRIC.findall(expression))
        assert wanted - exported == set(), alert
        assert wanted or set(re.findall(r"\b(\w+)\{", expression)) <= SYNTHETIC, alert


def local_config(gateway: str, triton: EmbeddedTriton, rules: Path, token: Path) -> dict[str, Any]:
    """The shipped scrape configuration, each job's targets replaced by this machine's, its
    intervals shortened for a test, the gateway's scrape token read from `token`."""
    config: dict[str, Any] = yaml.safe_load(SCRAPE_CONFIG.read_text())
    targets = {
        "gateway": gateway.removeprefix("http://"),
        "triton": triton.endpoints.metrics_url.removeprefix("http://").removesuffix("/metrics"),
    }
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    for job in config["scrape_configs"]:
        if "authorization" in job:
            assert job["job_name"] == "gateway"
            job["authorization"]["credentials_file"] = str(token)
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    return config


def shortened_rules(path: Path) -> None:
    """The shipped rules with `for: 0s`: the conditions as shipped, no waiting minutes."""
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    path.write_text(yaml.safe_dump(document))


def alert_states(prometheus: str) -> dict[str, str]:
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return {alert["labels"]["alertname"]: alert["state"] for alert in alerts}


def test_the_triton_alert_fires_when_triton_stops(
    gateway: str, own_triton: EmbeddedTriton, tmp_path: Path
) -> None:
    rules, config = tmp_path / "rules.yml", tmp_path / "prometheus.yml"
    shortened_rules(rules)
    token = tmp_path / "gateway_metrics_token"
    token.write_text(METRICS_TOKEN + "\n")
    config.write_text(yaml.safe_dump(local_config(gateway, own_triton, rules, token)))
    port = free_port()
    prometheus = f"http://127.0.0.1:{port}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:

        def both_scraped() -> bool:
            try:
                answer = httpx.get(f"{prometheus}/api/v1/targets", timeout=5)
            except httpx.TransportError:  # not listening yet
                answer = None
            if answer is None or answer.status_code != 200:  # or still loading its storage
                assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
                return False
            targets = answer.json()["data"]
            health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
            return health == {"gateway": "up", "triton": "up"}

        eventually(both_scraped, timeout_s=60, what="Prometheus scrapes the gateway and Triton")
        eventually(lambda: "TritonUnavailable" not in alert_states(prometheus), timeout_s=30)
        own_triton.stop()
        try:
            eventually(
                lambda: alert_states(prometheus).get("TritonUnavailable") == "firing",
                timeout_s=60,
                what="the TritonUnavailable alert fires",
            )
            missed = infer_tabular(gateway, AUTH)  # a miss fails: the gateway says degraded
            assert missed.status_code == 503, missed.text
        finally:
            own_triton.start()
        # No request reaches Triton after it is back (as while every one is a cache hit), so
        # the failed calls' flag stays; the alert follows the health probe and resolves.
        eventually(
            lambda: "TritonUnavailable" not in alert_states(prometheus),
            timeout_s=120,
            what="the alert resolves once Triton is back",
        )
        metrics = httpx.get(f"{gateway}/metrics", headers=SCRAPE).text
        assert value(metrics, "gateway_degraded", dependency="triton") == 1
    finally:
        process.terminate()
        process.wait(30)

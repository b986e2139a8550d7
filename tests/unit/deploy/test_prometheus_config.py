"""promtool accepts the shipped Prometheus configuration and alert rules. (That the alerts'
metrics exist and that an alert fires: tests/integration/test_prometheus_alerts.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.deploy import DEPLOY, tool


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules_and_the_scrape_config(tmp_path: Path) -> None:
    rules = promtool("check", "rules", str(DEPLOY / "prometheus" / "rules.yml"))
    assert rules.returncode == 0 and "SUCCESS: 8 rules found" in rules.stdout, rules.stderr
    # promtool reads the scrape token's file: where the secret would be mounted, a stand-in.
    shipped = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    token = tmp_path / "gateway_metrics_token"
    token.write_text("stand-in\n")
    assert shipped.count("/run/secrets/gateway_metrics_token") == 1
    (tmp_path / "prometheus.yml").write_text(
        shipped.replace("/run/secrets/gateway_metrics_token", str(token))
    )
    shutil.copy(DEPLOY / "prometheus" / "rules.yml", tmp_path / "rules.yml")
    config = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_a_triton_outage_fires_one_critical_alert_and_inference_errors_are_rated_alone() -> None:
    document = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    rules = {r["alert"]: r["expr"] for group in document["groups"] for r in group["rules"]}
    excluded = 'dependency!="triton_circuit"'
    reading_triton = {
        name
        for name, expression in rules.items()
        if re.search(r"triton|nv_inference", expression.replace(excluded, ""))
    }
    # TritonQueueTimeHigh is a warning about a slow Triton, not about one that is away.
    assert reading_triton == {"TritonUnavailable", "TritonQueueTimeHigh"}
    assert 'dependency!="triton_circuit"' in rules["GatewayBreakerOpen"]
    # Health probes and scrapes (always 200) must not dilute the error ratio.
    assert rules["GatewayHighErrorRate"].count('route=~".*/infer|/v1/embeddings"') == 2

"""promtool accepts the shipped Prometheus configuration and alert rules. (That the alerts'
metrics exist and that an alert fires: tests/integration/test_prometheus_alerts.py.)"""

from __future__ import annotations

import subprocess

from tests.support.deploy import DEPLOY, tool


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    rules = promtool("check", "rules", str(DEPLOY / "prometheus" / "rules.yml"))
    assert rules.returncode == 0 and "SUCCESS: 8 rules found" in rules.stdout, rules.stderr
    config = promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr

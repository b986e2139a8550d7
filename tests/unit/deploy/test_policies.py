"""checkov's policies over the rendered Kubernetes overlays and the Dockerfiles; the checks
skipped are listed, with the reason, in deploy/.checkov.yaml."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy import CHECKOV, DEPLOY, OVERLAYS, rendered

CONFIG = DEPLOY / ".checkov.yaml"


def checkov(*args: str) -> list[dict[str, Any]]:
    assert CHECKOV.exists(), "checkov is not installed: run `make test-deps` (or `make test`)"
    # No network: no guideline download, no platform mappings.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "--output", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def failures(reports: list[dict[str, Any]]) -> list[str]:
    return [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_rendered_manifests_pass_checkov(overlay: str, tmp_path: Path) -> None:
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered(overlay)))
    reports = checkov("--framework", "kubernetes", "--file", str(manifest))
    assert failures(reports) == []
    (summary,) = [report["summary"] for report in reports]
    assert summary["passed"] > 250 and summary["parsing_errors"] == 0


def test_the_dockerfiles_pass_checkov() -> None:
    reports = checkov("--framework", "dockerfile", "--directory", str(DEPLOY / "docker"))
    assert failures(reports) == []
    assert sum(report["summary"]["passed"] for report in reports) > 100


def test_every_skipped_check_says_why() -> None:
    lines = CONFIG.read_text().splitlines()
    skipped = yaml.safe_load(CONFIG.read_text())["skip-check"]
    assert skipped
    for check in skipped:
        (index,) = [i for i, line in enumerate(lines) if line.strip() == f"- {check}"]
        assert lines[index - 1].strip().startswith("#"), f"{check} is skipped without a reason"

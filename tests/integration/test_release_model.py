"""Model releases from CI against a `gateway up` stack, with a client streaming the whole
time: `deploy/ci/release-model.sh` promotes a good version and rolls a bad one back (at the
shadow stage, or at the quality gate after its canary steps), and the GitLab pipeline's test
and release jobs run in shell mode with gitlab-ci-local where deploy/ci/tools is installed.

The tests run in order and build on each other's versions (3 is released, 4 is refused...).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import onnx
import pytest

from tests.support.data import ROOT
from tests.support.polling import eventually
from tests.support.tabular import MODEL, Stream, constant_classifier
from tests.support.up import Stack

RELEASE = ROOT / "deploy" / "ci" / "release-model.sh"
GITLAB_CI_LOCAL = ROOT / "deploy" / "ci" / "tools" / "node_modules" / ".bin" / "gitlab-ci-local"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Iterator[Stack]:
    # A model load can starve this 2-core machine's CPU for seconds: a deadline floor of
    # 10 s (not 2) keeps the stream's requests from timing out while a release publishes.
    slow_machine = {"GATEWAY_TRITON_DEADLINE_MIN_S": "10"}
    started = Stack(tmp_path_factory.mktemp("release-up"), settings=slow_machine)
    try:
        started.wait_ready()
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def key(stack: Stack) -> str:
    printed = stack.printed_key()
    assert printed is not None, stack.output
    return printed


@pytest.fixture
def admin(stack: Stack, key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stack.described["gateway"], headers=headers, timeout=120) as client:
        yield client


def candidate(tmp_path: Path, model_repository: Path, note: str) -> Path:
    """Version 2's model (the one serving at first) as a new file: the same answers,
    other bytes (its doc string)."""
    model = onnx.load(model_repository / MODEL / "2" / "model.onnx")
    model.doc_string = note
    path = tmp_path / f"{note}.onnx"
    onnx.save(model, path)
    return path


def release(
    stack: Stack, key: str, source: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_URL": stack.described["gateway"], "GATEWAY_KEY": key}
    return subprocess.run(
        [str(RELEASE), MODEL, str(source), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def traffic(admin: httpx.Client) -> dict[str, Any]:
    listed = admin.get("/admin/models").json()["models"]
    (model,) = [m for m in listed if m["name"] == MODEL]
    split: dict[str, Any] = model["traffic"] or {}
    return split


# Steps of 2 s; a latency ratio this busy 2-core machine holds to (a freshly loaded version's
# first answers are slow here): the latency rule itself is unit-tested on figures.
QUICK = ("--step-s", "2", "--steps", "50,100", "--max-latency-ratio", "20")


def test_a_good_version_is_shadowed_canaried_and_promoted(
    stack: Stack, key: str, admin: httpx.Client, tmp_path: Path, model_repository: Path
) -> None:
    good = candidate(tmp_path, model_repository, "retrained")
    with Stream(stack.described["gateway"], {"Authorization": f"Bearer {key}"}) as stream:
        done = release(stack, key, good, *QUICK, "--shadow-requests", "10", "--shadow-s", "120")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "release of tabular_classifier: version 3 to replace version 2" in done.stdout
        assert '"measure": "agreement"' in done.stdout  # the shadow stage's figures
        assert "step 50 %: v3" in done.stdout and "step 100 %: v3" in done.stdout
        assert '"result": "passed"' in done.stdout
        assert "DECISION: version 3 promoted" in done.stdout
        assert traffic(admin)["weights"] == {"3": 100}
        again = release(stack, key, good, *QUICK)  # a re-run, as after a crash
    assert again.returncode == 0, again.stdout + again.stderr
    assert "version 3 is this file already: reused" in again.stdout
    assert "nothing to do" in again.stdout
    assert stream.errors == [] and stream.versions["3"] > 0, (stream.statuses, stream.errors)


def test_a_bad_version_is_rolled_back_at_the_shadow_stage(
    stack: Stack, key: str, admin: httpx.Client, tmp_path: Path
) -> None:
    bad = tmp_path / "constant.onnx"
    bad.write_bytes(constant_classifier())
    before = traffic(admin)["weights"]
    with Stream(stack.described["gateway"], {"Authorization": f"Bearer {key}"}) as stream:
        done = release(stack, key, bad, *QUICK, "--shadow-requests", "10", "--shadow-s", "120")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "version 4 agreed with version 3 on" in done.stdout
    assert "DECISION: rolled back to version 3" in done.stdout
    assert "step 50 %" not in done.stdout  # it never served a request
    assert traffic(admin)["weights"] == before == {"3": 100}
    assert stream.errors == [] and set(stream.versions) == {"3"}, stream.answers


def test_a_bad_version_is_rolled_back_when_the_quality_gate_refuses_it(
    stack: Stack, key: str, admin: httpx.Client, tmp_path: Path
) -> None:
    bad = tmp_path / "constant.onnx"
    bad.write_bytes(constant_classifier())
    with Stream(stack.described["gateway"], {"Authorization": f"Bearer {key}"}) as stream:
        done = release(stack, key, bad, *QUICK)
        after = traffic(admin)["weights"]
        stream.versions.clear()
        served = stream.statuses[200]
        # the requests sent after the rollback
        eventually(lambda: stream.statuses[200] >= served + 20, 60, "20 more requests")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "version 4 is this file already: reused" in done.stdout
    assert "step 50 %: v4" in done.stdout  # errors and latency were fine: answers were not
    assert "quality gate" in done.stdout.lower()
    assert "DECISION: rolled back to version 3" in done.stdout
    assert after == {"3": 100}
    assert stream.errors == [] and set(stream.versions) == {"3"}, stream.answers


def gitlab_ci_local(*arguments: str) -> subprocess.CompletedProcess[str]:
    if not GITLAB_CI_LOCAL.exists() or shutil.which("rsync") is None:
        pytest.skip("gitlab-ci-local is not installed (make test-deps installs it where npm is)")
    if not (ROOT / ".git").exists():
        pytest.skip("gitlab-ci-local runs jobs from a git work tree")
    return subprocess.run(
        [str(GITLAB_CI_LOCAL), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_gitlab_release_job_runs_in_shell_mode(
    stack: Stack, key: str, admin: httpx.Client, tmp_path: Path, model_repository: Path
) -> None:
    good = candidate(tmp_path, model_repository, "from-gitlab")
    with Stream(stack.described["gateway"], {"Authorization": f"Bearer {key}"}) as stream:
        job = gitlab_ci_local(
            "release-model",
            "--variable",
            f"RELEASE_MODEL={MODEL}",
            "--variable",
            f"RELEASE_SOURCE={good}",
            "--variable",
            "RELEASE_STEPS=50,100",
            "--variable",
            "RELEASE_STEP_SECONDS=2",
            "--variable",
            "RELEASE_OPTIONS=--max-latency-ratio 20",
            "--variable",
            f"GATEWAY_URL={stack.described['gateway']}",
            "--variable",
            f"GATEWAY_KEY={key}",
        )
    assert job.returncode == 0, job.stdout + job.stderr
    assert "starting shell" in job.stdout and "PASS" in job.stdout, job.stdout
    assert "DECISION: version 5 promoted" in job.stdout
    assert key not in job.stdout + job.stderr
    assert traffic(admin)["weights"] == {"5": 100}
    assert stream.errors == [], stream.statuses


def test_the_gitlab_test_job_runs_in_shell_mode() -> None:
    # The job is `make test`: here with one small test file, not the suite running it.
    job = gitlab_ci_local("test", "--variable", "PYTEST_ARGS=-q tests/unit/test_readme.py")
    assert job.returncode == 0, job.stdout + job.stderr
    assert "starting shell" in job.stdout and "PASS" in job.stdout, job.stdout
    assert "mypy" in job.stdout and "passed" in job.stdout

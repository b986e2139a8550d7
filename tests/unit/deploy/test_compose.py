"""deploy/compose/compose.yaml: valid against the Compose specification's schema, every file
it names exists, and the gateway's command and environment are the shared ones."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from auth import ApiKey
from tests.support.deploy import (
    COMPOSE_FILE,
    DEPLOY,
    GATEWAY_ENV,
    ROOT,
    compose,
    gateway_command,
    gateway_env,
    tool,
)

COMPOSE_DIR = COMPOSE_FILE.parent


def test_the_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_compose_file_that_breaks_the_specification_is_refused() -> None:
    broken = COMPOSE_DIR / ".broken-compose.yaml"  # beside it: same relative paths
    # In the replicas' shared definition: checked once merged into each service.
    text = COMPOSE_FILE.read_text().replace("  stop_grace_period: 60s", "  stop_grace: 60s")
    broken.write_text(text)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
             str(broken)],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
    finally:
        broken.unlink()
    assert result.returncode == 1 and "stop_grace" in result.stdout


def test_every_file_the_stack_names_exists() -> None:
    document = compose()
    for config in document["configs"].values():
        assert (COMPOSE_DIR / config["file"]).is_file(), config
    for service in document["services"].values():
        for env_file in service.get("env_file", []):
            assert (COMPOSE_DIR / env_file["path"]).resolve() == GATEWAY_ENV
        build = service.get("build")
        if build:
            assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).is_file(), build
    # The secrets are made by make-secrets.sh, under the names the stack reads.
    secrets = {name: spec["file"] for name, spec in document["secrets"].items()}
    script = (COMPOSE_DIR / "make-secrets.sh").read_text()
    for name, path in secrets.items():
        assert path == f"./secrets/{name}" and re.search(rf"^write {name} ", script, re.M)
    assert (COMPOSE_DIR / "secrets" / ".gitignore").read_text().splitlines()[1:] == [
        "*",
        "!.gitignore",
    ]


def test_the_gateway_runs_the_shared_command_with_its_secrets_as_files() -> None:
    services = compose()["services"]
    gateway = services["gateway-1"]
    assert {k: v for k, v in services["gateway-2"].items() if k != "ports"} == {
        k: v for k, v in gateway.items() if k != "ports"
    }  # two replicas of one definition, each on host ports of its own
    assert gateway["ports"] != services["gateway-2"]["ports"]
    assert gateway["command"] == gateway_command()
    assert gateway["command"][0] == "serve"
    assert set(gateway["secrets"]) == set(compose()["secrets"]) - {"redis_auth_conf"}
    # Prometheus scrapes /metrics with the gateway's token, read from the same secret.
    assert compose()["services"]["prometheus"]["secrets"] == ["gateway_metrics_token"]
    assert gateway["read_only"] is True
    env = GATEWAY_ENV.read_text()
    assert "GATEWAY_SECRETS_DIR=/run/secrets" in env
    # Never in the environment (a variable would also win over the secret file): the Redis
    # URL carries Redis's password.
    assert not [
        name
        for name in gateway_env()
        if re.search(r"PEPPER|CACHE_SECRET|ADMIN_KEY|REDIS_URL", name)
    ]
    # The image's defaults are the same command.
    dockerfile = (DEPLOY / "docker" / "gateway.Dockerfile").read_text()
    assert f"CMD {json.dumps(gateway_command())}" in dockerfile


def test_profiles_choose_the_cpu_or_the_gpu_triton_behind_one_name() -> None:
    services = compose()["services"]
    cpu, gpu = services["triton-cpu"], services["triton-gpu"]
    assert cpu["profiles"] == ["cpu"] and gpu["profiles"] == ["gpu"]
    for triton in (cpu, gpu):
        assert triton["networks"]["default"]["aliases"] == ["triton", "triton-endpoints"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "--model-control-mode=explicit" in cpu["command"]
    assert cpu["command"] == gpu["command"] and "--trace-config=level=TIMESTAMPS" in cpu["command"]
    # CPUs: the image built without NVIDIA's registry; GPUs: NVIDIA's release image.
    assert cpu["build"]["dockerfile"] == "deploy/docker/triton-cpu.Dockerfile"
    assert gpu["build"]["dockerfile"] == "deploy/docker/triton.Dockerfile"
    assert services["models-gpu"]["command"] == ["--gpu"]
    for triton, seeder in ((cpu, "models-cpu"), (gpu, "models-gpu")):
        assert triton["depends_on"][seeder]["condition"] == "service_completed_successfully"


def test_the_collector_keeps_errors_and_slow_traces() -> None:
    collector = yaml.safe_load((COMPOSE_DIR / "otel-collector.yaml").read_text())
    policies = {p["type"]: p for p in collector["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] <= 1000
    assert "tail_sampling" in collector["service"]["pipelines"]["traces"]["processors"]


def test_the_secrets_are_made_from_nothing_but_python_and_redis_needs_its_password(
    tmp_path: Path,
) -> None:
    """From zero (no image built, nothing installed): every secret the stack names, an admin
    key the gateway accepts, and one Redis password in Redis's config and the gateway's URL."""
    for folder in ("auth", "deploy/compose"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("secrets"))
    script = tmp_path / "deploy" / "compose" / "make-secrets.sh"
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no project venv, no `gateway`
    subprocess.run([tool("bash"), str(script)], check=True, env=clean, timeout=60)
    made = script.parent / "secrets"
    assert set(compose()["secrets"]) <= {path.name for path in made.iterdir()}
    ApiKey.parse((made / "gateway_admin_key").read_text().strip())
    password = (made / "redis_password").read_text().strip()
    assert (made / "redis_auth_conf").read_text() == f"requirepass {password}\n"
    assert (made / "gateway_redis_url").read_text() == f"redis://:{password}@redis:6379/0\n"
    before = {path.name: path.read_text() for path in made.iterdir()}
    subprocess.run([tool("bash"), str(script)], check=True, env=clean, timeout=60)
    assert {path.name: path.read_text() for path in made.iterdir()} == before  # kept
    redis = compose()["services"]["redis"]
    assert "/run/secrets/redis_auth_conf" in redis["command"] and redis["secrets"] == [
        "redis_auth_conf"
    ]

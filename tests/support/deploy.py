"""deploy/ as the tests read it: rendered Kubernetes overlays, the Compose file, the
gateway's shared command and environment."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
GATEWAY_ENV = DEPLOY / "kubernetes" / "base" / "gateway.env"
OVERLAYS = ("cpu", "gpu")
KUBERNETES_VERSION = "1.32.0"  # the API the manifests are validated against
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"  # `make test-deps`


def tool(name: str) -> str:
    """The path of a command the deploy tests need; a clear failure when it is missing."""
    path = shutil.which(name)
    assert path, f"`{name}` is not installed: run `make test-deps` (or `make test`)"
    return path


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    """The objects `kubectl kustomize deploy/kubernetes/overlays/<overlay>` renders."""
    text = subprocess.run(
        [tool("kubectl"), "kustomize", str(DEPLOY / "kubernetes" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


def find(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return dict(found)


def container(workload: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainers" if init else "containers"
    (found,) = [c for c in workload["spec"]["template"]["spec"][key] if c["name"] == name]
    return dict(found)


@functools.cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def gateway_env() -> dict[str, str]:
    """deploy/kubernetes/base/gateway.env, as Compose and kustomize read it."""
    values = {}
    for line in GATEWAY_ENV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def gateway_command() -> list[str]:
    """The gateway's command in Compose (the image's entrypoint is `gateway`)."""
    command: list[str] = compose()["x-gateway"]["command"]  # both replicas' definition
    return command

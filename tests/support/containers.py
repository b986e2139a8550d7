"""The project's images and its Compose stack with podman, for tests/containers.

Nothing is pulled: the images build on Debian bases made here with mmdebstrap (Debian's
packages, as these machines reach no image registry), passed as each Dockerfile's
BASE_IMAGE. A CA bundle for pip (PIP_CERT) and local wheel folders (PIP_FIND_LINKS, where
torch's CPU build lies on machines without PyTorch's index) are mounted into the builds
when this environment names them, and never copied into an image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.support.deploy import ROOT

PYTHON_BASE = "localhost/inference-gateway-test/python:bookworm"
REDIS_BASE = "localhost/inference-gateway-test/redis:bookworm"
# Python 3.11 with venv, and libpython (Triton's Python backend stub links to it).
PYTHON_PACKAGES = "python3,python3-venv,libpython3.11,passwd,ca-certificates"
REDIS_PACKAGES = "redis-server,redis-tools"
IMAGES = {  # Dockerfile under deploy/docker -> the tag compose.yaml names
    "gateway.Dockerfile": "inference-gateway/gateway:0.1.0",
    "models.Dockerfile": "inference-gateway/models:0.1.0",
    "triton-cpu.Dockerfile": "inference-gateway/triton-cpu:2.51",
}
BUILD_TIMEOUT_S = 2400  # from nothing: the models image trains and exports every model


def unavailable() -> str | None:
    """Why images cannot be built and run here, or None."""
    for tool in ("podman", "mmdebstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install podman runc mmdebstrap)"
    try:
        info = subprocess.run(_resolved(["podman", "info"]), capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "podman info did not answer within 60 s"
    if info.returncode != 0:
        return f"podman does not work here: {info.stderr.decode().strip()[-300:]}"
    return None


def _resolved(argv: Sequence[str]) -> list[str]:
    """`argv` with its program's full path."""
    return [shutil.which(argv[0]) or argv[0], *argv[1:]]


def run(argv: Sequence[str], timeout_s: float, **options: object) -> str:
    """Run a command; its output, or a failure that quotes the end of it."""
    done = subprocess.run(
        _resolved(argv), capture_output=True, text=True, timeout=timeout_s, check=False, **options
    )  # type: ignore[call-overload]
    output: str = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}):\n{output[-3000:]}"
    return output


def image_exists(name: str) -> bool:
    exists = subprocess.run(_resolved(["podman", "image", "exists", name]), timeout=60)
    return exists.returncode == 0


def debian_base(name: str, packages: str, folder: Path, *changes: str) -> None:
    """A Debian bookworm image of `packages` (mmdebstrap's minbase), unless already made."""
    if image_exists(name):
        return
    tarball = folder / (name.rsplit("/", 1)[-1].replace(":", "-") + ".tar")
    run(["mmdebstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(tarball)], 900)
    run(["podman", "import", *(f"--change={c}" for c in changes), str(tarball), name], 300)
    tarball.unlink()


def build_images(folder: Path) -> None:
    """The bases, then every image Compose's cpu profile runs (podman's layer cache makes a
    second build of unchanged sources quick)."""
    debian_base(PYTHON_BASE, PYTHON_PACKAGES, folder)
    debian_base(REDIS_BASE, REDIS_PACKAGES, folder, "WORKDIR /data", 'CMD ["redis-server"]')
    for dockerfile, tag in IMAGES.items():
        argv = ["podman", "build", "--pull=never", "--format=docker", "--quiet"]
        argv += ["--build-arg", f"BASE_IMAGE={PYTHON_BASE}", *_pip_arguments(dockerfile)]
        argv += ["-f", str(ROOT / "deploy" / "docker" / dockerfile), "-t", tag, str(ROOT)]
        run(argv, BUILD_TIMEOUT_S)


def _pip_arguments(dockerfile: str) -> list[str]:
    arguments = []
    certificate = os.environ.get("PIP_CERT")
    if certificate and Path(certificate).is_file():
        inside = "/etc/ssl/certs/host-ca.crt"
        arguments += ["-v", f"{certificate}:{inside}:ro", "--build-arg", f"PIP_CERT={inside}"]
    folders = [f for f in os.environ.get("PIP_FIND_LINKS", "").split() if Path(f).is_dir()]
    if folders and dockerfile == "models.Dockerfile":
        for wheels in folders:
            arguments += ["-v", f"{wheels}:{wheels}:ro"]
        arguments += ["--build-arg", f"PIP_FIND_LINKS={' '.join(folders)}"]
        arguments += ["--build-arg", "TORCH_INDEX="]  # torch's CPU build from those folders
    return arguments


class ComposeStack:
    """deploy/compose/compose.yaml's cpu profile under podman-compose, from a copy of the
    deployment files (its secrets made there, not in the source tree)."""

    def __init__(self, folder: Path, project: str, ports: dict[str, int]) -> None:
        for part in ("deploy", "auth"):
            shutil.copytree(
                ROOT / part,
                folder / part,
                ignore=shutil.ignore_patterns("secrets", "node_modules", "__pycache__"),
            )
        self.directory = folder / "deploy" / "compose"
        self.project = project
        self.environment = {
            **os.environ,
            "REDIS_IMAGE": REDIS_BASE,
            **{name: str(port) for name, port in ports.items()},
        }

    def make_secrets(self) -> Path:
        run(["bash", str(self.directory / "make-secrets.sh")], 120)
        return self.directory / "secrets"

    def compose(self, *arguments: str, timeout_s: float = 600) -> str:
        return run(self._argv(*arguments), timeout_s, cwd=self.directory, env=self.environment)

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def down(self) -> None:
        """Every container and volume of the stack gone, whatever state it is in (never
        fails: it runs after tests that may have failed half-way)."""
        subprocess.run(
            self._argv("down", "--volumes", "--timeout", "10"),
            cwd=self.directory,
            env=self.environment,
            capture_output=True,
            timeout=300,
            check=False,
        )

    def _argv(self, *arguments: str) -> list[str]:
        podman_compose = str(Path(sys.executable).parent / "podman-compose")
        return [podman_compose, "-p", self.project, "-f", "compose.yaml", "--profile", "cpu",
                *arguments]  # fmt: skip

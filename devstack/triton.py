"""Runs a real `tritonserver` from the `nvidia-pytriton` wheel, with no Docker and no GPU.

The wheel ships Triton's binary, its shared libraries and the Python backend. `start()`:
1. assembles a backend folder under the state folder: Triton's `python` backend (with the
   stub built for the running Python) and our CPU `onnxruntime` backend
   (`devstack/backends/onnxruntime/model.py`);
2. starts `tritonserver` on free loopback ports in explicit model-control mode, loading
   every model folder of the repository (a folder with a `config.pbtxt`);
3. waits until `/v2/health/ready` answers 200.
Triton's output goes to `<state>/triton.log`. See `ManagedProcess` for how it is stopped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.ports import free_port
from devstack.process import (
    EmbeddedServer,
    EmbeddedServiceError,
    ManagedProcess,
    backend_environment,
)

_BACKENDS = Path(__file__).parent / "backends"


@dataclass(frozen=True)
class TritonEndpoints:
    """Where a running Triton listens."""

    http_url: str  # http://host:port
    grpc_url: str  # host:port
    metrics_url: str  # http://host:port/metrics


@dataclass(frozen=True)
class TritonDistribution:
    """The files of the `nvidia-pytriton` wheel that running Triton needs."""

    server: Path
    libraries: Path
    python_backend: Path
    stub: Path

    @classmethod
    def find(cls) -> TritonDistribution:
        spec = importlib.util.find_spec("pytriton")
        if spec is None or spec.origin is None:
            raise EmbeddedServiceError(
                "the embedded Triton needs the `embedded` extra: pip install 'gateway[embedded]'"
                " (or set GATEWAY_TRITON_URL and GATEWAY_TRITON_GRPC_URL)"
            )
        root = Path(spec.origin).parent / "tritonserver"
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        found = cls(
            server=root / "bin" / "tritonserver",
            libraries=Path(spec.origin).parent.parent / "nvidia_pytriton.libs",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / python / "triton_python_backend_stub",
        )
        for path in (found.server, found.libraries, found.python_backend, found.stub):
            if not path.exists():
                raise EmbeddedServiceError(f"nvidia-pytriton is incomplete: {path} is missing")
        return found


def repository_models(repository: Path) -> list[str]:
    """Models of a repository that can load: a `config.pbtxt` and a built version folder."""
    return sorted(
        config.parent.name
        for config in repository.glob("*/config.pbtxt")
        if any(p.is_dir() and p.name.isdigit() for p in config.parent.iterdir())
    )


class EmbeddedTriton(EmbeddedServer):
    """A tritonserver child process serving one model repository on loopback ports."""

    name = "Triton"

    def __init__(
        self,
        model_repository: Path,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        models: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        ready_timeout_s: float = 180.0,
    ) -> None:
        self.model_repository = model_repository.resolve()
        self.state_dir = state_dir.resolve()
        self.host = host
        self.models = list(models) if models is not None else None
        self.extra_args = list(extra_args)
        self.ready_timeout_s = ready_timeout_s
        # Ports are fixed for the object's life, so a restarted server is found again.
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.endpoints = TritonEndpoints(
            http_url=f"http://{host}:{self.http_port}",
            grpc_url=f"{host}:{self.grpc_port}",
            metrics_url=f"http://{host}:{self.metrics_port}/metrics",
        )
        self._process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.state_dir / "triton.log"

    def start(self) -> TritonEndpoints:
        distribution = TritonDistribution.find()
        backends = self._assemble_backends(distribution)
        models = (
            self.models if self.models is not None else repository_models(self.model_repository)
        )
        argv = [
            str(distribution.server),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--model-control-mode=explicit",
            *(f"--load-model={model}" for model in models),
            "--exit-timeout-secs=10",
            *self.extra_args,
        ]
        env = backend_environment()
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, [str(distribution.libraries), env.get("LD_LIBRARY_PATH")])
        )
        # The backend stub imports numpy and onnxruntime from the first Python on PATH.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        self._process = ManagedProcess("tritonserver", argv, self.log_path, env=env)
        self._process.start()
        self._process.wait_ready(self.is_ready, self.ready_timeout_s)
        return self.endpoints

    def is_ready(self) -> bool:
        try:
            response = httpx.get(f"{self.endpoints.http_url}/v2/health/ready", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _assemble_backends(self, distribution: TritonDistribution) -> Path:
        backends = self.state_dir / "triton" / "backends"
        python = backends / "python"
        python.mkdir(parents=True, exist_ok=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            _copy_if_changed(distribution.python_backend / name, python / name)
        _copy_if_changed(distribution.stub, python / distribution.stub.name)
        for source in _BACKENDS.glob("*/model.py"):
            _copy_if_changed(source, backends / source.parent.name / "model.py")
        return backends


def _copy_if_changed(source: Path, target: Path) -> None:
    if target.exists() and target.read_bytes() == source.read_bytes():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copy2(source, tmp)
    tmp.replace(target)


def triton_trace_arguments(traces_url: str) -> list[str]:
    """tritonserver options that send its OpenTelemetry spans to `traces_url`.

    Triton continues the trace of an incoming `traceparent` (the gateway sends one with
    every call), so its spans join the gateway's traces.
    """
    address = traces_url.split("://", 1)[-1]  # Triton takes host:port/path
    return [
        "--trace-config=mode=opentelemetry",
        "--trace-config=rate=1",
        "--trace-config=level=TIMESTAMPS",
        f"--trace-config=opentelemetry,url={address}",
        "--trace-config=opentelemetry,resource=service.name=triton",
    ]

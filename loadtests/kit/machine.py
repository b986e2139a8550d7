"""What machine and package versions a benchmark ran on, for its report."""

from __future__ import annotations

import contextlib
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    versions = {}
    for package in (
        "nvidia-pytriton",
        "onnxruntime",
        "fastapi",
        "uvicorn",
        "httptools",
        "redis",
        "opentelemetry-sdk",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "triton": "2.51.0 (nvidia-pytriton 0.7.0 wheel), CPU, Python-based onnxruntime backend",
        **versions,
    }

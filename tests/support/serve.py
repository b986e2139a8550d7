"""`gateway serve` as a child process, the way an operator runs it."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from devstack import EmbeddedRedis, EmbeddedTriton
from devstack.ports import free_port
from tests.support.data import ROOT
from tests.support.keys import ADMIN_KEY
from tests.support.polling import eventually

STOP_S = 15  # a stop takes about a second; this is the test's patience


@dataclass(frozen=True)
class Served:
    url: str
    port: int
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def gateway_serve(
    triton: EmbeddedTriton,
    redis_server: EmbeddedRedis,
    state_dir: Path,
    workers: int = 2,
    command: Sequence[str] | None = None,
    port: int | None = None,
    tls_ca: Path | None = None,
    stop_s: float = STOP_S,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    **environment: str,
) -> Iterator[Served]:
    """`gateway serve --workers N` (or `gateway <command>`, its --host and --port replaced)
    on a free port (or `port`); HTTPS when `tls_ca` is given (the CA to verify with); its
    stderr into `log` if given.
    SIGTERM afterwards, which must stop it (and its workers) within `stop_s`, or the test
    fails and everything is killed. `env` and `environment`: GATEWAY_* values of the test."""
    port = port or free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PROMETHEUS_"))},
        "GATEWAY_TRITON_URL": triton.endpoints.http_url,
        "GATEWAY_REDIS_URL": redis_server.url,
        "GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_STATE_DIR": str(state_dir),
        "GATEWAY_ACCESS_LOG": "false",
        **(env or {}),
        **environment,
    }
    args = list(command or ["serve", "--workers", str(workers)])
    args = _with_option(_with_option(args, "--host", "127.0.0.1"), "--port", str(port))
    args = _with_option(args, "--grpc-port", str(free_port()))  # never the shared default
    with contextlib.ExitStack() as files:
        stderr = files.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(tls_ca)) if tls_ca else True
    try:
        eventually(lambda: ready(url, process, verify), timeout_s=90, what="gateway serve is ready")
        yield Served(url, port, process)
    finally:
        _stop(process, stop_s)


def _with_option(args: list[str], option: str, value: str) -> list[str]:
    if option in args:
        index = args.index(option)
        return [*args[: index + 1], value, *args[index + 2 :]]
    return [*args, option, value]


def ready(url: str, process: subprocess.Popen[bytes], verify: ssl.SSLContext | bool = True) -> bool:
    """`gateway serve` still runs and says it is ready."""
    assert process.poll() is None, f"gateway serve exited with {process.returncode}"
    try:
        return httpx.get(f"{url}/v2/health/ready", verify=verify).status_code == 200
    except httpx.TransportError:
        return False


def _stop(process: subprocess.Popen[bytes], stop_s: float = STOP_S) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        children = psutil.Process(process.pid).children(recursive=True)
    process.terminate()
    try:
        process.wait(stop_s)
    except subprocess.TimeoutExpired:
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        process.kill()
        process.wait()
        raise AssertionError(f"gateway serve did not stop within {stop_s} s of SIGTERM") from None

"""`gateway up`: the whole stack on this machine.

`gateway up` starts an embedded Redis and Triton unless GATEWAY_REDIS_URL /
GATEWAY_TRITON_URL point at external ones, then runs the gateway in the foreground. The
embedded Triton serves `<state>/model_repository`, a working copy of
GATEWAY_MODEL_REPOSITORY kept up to date with it at every start: what is published at run
time changes the copy, never the source folder. It refuses at once, before starting
anything, when another `gateway up` holds the state folder or the port is taken
(`gateway.runtime.startup_checks`). It writes `<state>/stack.json` with the URL of every
running piece and removes it on exit, and prints "gateway ready at ..." only once the
gateway answers. While it runs, a supervisor restarts an embedded Triton or Redis that exits
or hangs (`devstack.supervisor`) and records their state in stack.json. Ctrl-C or SIGTERM
stops the gateway, then Triton, then Redis.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx

from devstack import EmbeddedRedis, EmbeddedTriton
from devstack.banner import banner
from devstack.bootstrap import bootstrap_admin
from devstack.process import EmbeddedServer
from devstack.supervisor import BackendSupervisor
from devstack.triton import triton_trace_arguments
from gateway.control.repository_seed import seed
from gateway.observability.logs import configure_logging
from gateway.observability.otlp_json import traces_endpoint
from gateway.runtime.serve import serve
from gateway.runtime.stack_state import STACK_FILE
from gateway.runtime.startup_checks import check_port_free, claim_state_dir
from gateway.settings import Settings

logger = logging.getLogger(__name__)
WORKING_COPY = "model_repository"  # in the state folder


def up(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    tritons: int = 1,
    grpc_port: int | None = None,
) -> None:
    configure_logging(settings.log_level)
    _exit_on_sigterm()
    state = settings.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(claim_state_dir(state))
        check_port_free(host, port)
        grpc_port = port + 1 if grpc_port is None else grpc_port
        if grpc_port:
            check_port_free(host, grpc_port, "--grpc-port")
        pids = {"gateway": os.getpid()}
        embedded: list[EmbeddedServer] = []
        redis_url = settings.redis_url
        if redis_url is None:
            redis = EmbeddedRedis(state)
            stack.callback(redis.stop)
            redis_url = redis.start()
            pids["redis"] = redis.pid or 0
            embedded.append(redis)
        triton_urls = None
        if not settings.triton_sources:
            settings = _working_copy(settings, state)
            # Several Tritons share the model repository, as replicas share a volume.
            started = []
            for n in range(tritons):
                triton = EmbeddedTriton(
                    settings.model_repository,
                    state if n == 0 else state / f"triton-{n + 1}",
                    extra_args=_embedded_triton_tracing(settings),
                )
                if tritons > 1:
                    triton.name = f"Triton {n + 1}"
                stack.callback(triton.stop)
                started.append(triton.start())
                pids[triton.name.lower()] = triton.pid or 0
                embedded.append(triton)
            triton_url, grpc_url, metrics_url = (
                started[0].http_url,
                started[0].grpc_url,
                started[0].metrics_url,
            )
            if tritons > 1:
                triton_urls = ",".join(
                    f"{e.http_url}#metrics={httpx.URL(e.metrics_url).port}" for e in started
                )
        else:
            triton_url, grpc_url, metrics_url = settings.triton_sources[0], None, None
        settings = settings.with_services(
            triton_url=triton_url, redis_url=redis_url, triton_urls=triton_urls
        )
        scheme = "https" if settings.tls_cert_file else "http"
        grpc_address = f"{_display_host(host)}:{grpc_port}" if grpc_port else None
        gateway_url = f"{scheme}://{_display_host(host)}:{port}"
        stack_file = state / STACK_FILE
        described: dict[str, object] = {
            "gateway": gateway_url,
            "gateway_grpc": grpc_address,
            "triton_http": triton_url,
            "tritons": settings.triton_sources,
            "triton_grpc": grpc_url,
            "triton_metrics": metrics_url,
            "redis": redis_url,
            "pids": pids,
        }

        def report(backends: list[dict[str, object]]) -> None:
            for backend in embedded:  # a restarted backend has a new process id
                pids[backend.name.lower()] = backend.pid or 0
            _write_json(stack_file, {**described, "backends": backends})

        stack.callback(stack_file.unlink, missing_ok=True)
        supervisor = BackendSupervisor(embedded, report)
        supervisor.start()  # writes stack.json
        stack.callback(supervisor.stop)  # first of all: no restarts while stopping
        admin = bootstrap_admin(settings)
        serving = threading.Event()
        stack.callback(serving.set)  # the announcer gives up when serving ends

        def announce() -> str:
            states = ", ".join(f"{b['name']} {b['state']}" for b in supervisor.states())
            return "\n".join(
                [
                    banner(
                        gateway_url,
                        triton_url,
                        {"Authorization": "Bearer $GATEWAY_KEY"},
                        grpc_address,
                    ),
                    f"embedded backends (supervised): {states or 'none'}",
                    admin,
                    f"stack: {stack_file}   (Ctrl-C stops everything)",
                ]
            )

        threading.Thread(
            target=_announce_when_answering,
            args=(gateway_url, announce, serving),
            name="announce",
            daemon=True,
        ).start()
        serve(settings, host, port, workers, grpc_port)


def _working_copy(settings: Settings, state: Path) -> Settings:
    """The embedded Triton serves a working copy of the repository in the state folder,
    brought up to date with the source at every start (gateway/control/repository_seed.py),
    so publishing and unloading change the copy, never the source folder."""
    working = state / WORKING_COPY
    seeded = seed(settings.model_repository.resolve(), working)
    logger.info(
        "serving %s, a working copy of %s: %s", working, settings.model_repository, seeded.summary()
    )
    return settings.model_copy(update={"model_repository": working})


def _announce_when_answering(url: str, text: Callable[[], str], stopped: threading.Event) -> None:
    """Print `text()` once the gateway at `url` answers; nothing if it never does."""
    while not stopped.wait(0.1):
        try:
            # Its own process: no certificate to check (it may be self-signed).
            live = httpx.get(f"{url}/v2/health/live", timeout=1.0, verify=False)  # noqa: S501
            if live.status_code == 200:
                print(text(), flush=True)
                return
        except httpx.TransportError:
            continue


def _embedded_triton_tracing(settings: Settings) -> list[str]:
    """Triton-side tracing of the embedded Triton: off unless GATEWAY_TRITON_TRACING asks.

    The embedded Triton is 2.51, which crashes with OpenTelemetry tracing under concurrent
    load (Triton issue 7795, "Signal (11) when tracing is enabled", fixed in Triton 2.57 by
    its PR 8144). The gateway's own spans do not depend on it; an external Triton >= 2.57
    continues the gateway's traces when its operator turns tracing on there.
    """
    traces_url = traces_endpoint()
    if traces_url is None:
        return []
    if not settings.triton_tracing:
        logger.warning(
            "tracing: the gateway's spans go to %s; the embedded Triton's own spans are off, "
            "because Triton 2.51 can crash with tracing under load (Triton issue 7795, fixed "
            "in 2.57); GATEWAY_TRITON_TRACING=true turns them on anyway",
            traces_url,
        )
        return []
    logger.warning(
        "tracing: the embedded Triton traces every request (GATEWAY_TRITON_TRACING); Triton "
        "2.51 can crash with tracing under load (Triton issue 7795)"
    )
    return triton_trace_arguments(traces_url)


def _exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so the ExitStack stops what was started."""

    def handler(signum: int, _: FrameType | None) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - comparing, not binding


def _write_json(path: Path, document: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)

"""`gateway serve`: the gateway alone, in the foreground, against the Triton and Redis of its
settings (production); `gateway up` runs it too, after starting the embedded ones.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from pathlib import Path

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from gateway.runtime.listeners import REUSE_PORT_AVAILABLE, ReusePortListener
from gateway.runtime.serving import Supervisor, server_config, stop_deadline_s
from gateway.runtime.startup_checks import check_port_free
from gateway.settings import Settings


def serve(
    settings: Settings, host: str, port: int, workers: int, grpc_port: int | None = None
) -> None:
    """Run the gateway in the foreground until Ctrl-C or SIGTERM.

    Workers are separate processes, so they read their settings from the environment.
    Several workers share their Prometheus metrics through files in a fresh folder
    (PROMETHEUS_MULTIPROC_DIR, unless the operator set one), and each listens on a socket
    of its own (`gateway.runtime.listeners`) unless GATEWAY_REUSE_PORT is false. With `grpc_port`,
    every worker also serves the v2 gRPC protocol there (`gateway.grpc_api`).
    """
    if grpc_port:
        # The workers bind it with SO_REUSEPORT, which would let them share it with
        # another server unnoticed: refuse at once if anything has it.
        check_port_free(host, grpc_port, "--grpc-port")
        settings = settings.model_copy(update={"grpc_port": grpc_port, "grpc_host": host})
    os.environ.update(settings.as_environment())
    if workers > 1:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(
            settings.state_dir.resolve() / "metrics"
        )
        shutil.rmtree(folder, ignore_errors=True)  # values of earlier runs
        Path(folder).mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    config = server_config(settings, "gateway.app:app_from_environment", host, port, workers)
    if workers == 1:
        server = uvicorn.Server(config)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once stopped
            server.run()
        if not server.started:
            sys.exit(STARTUP_FAILURE)
        return
    if settings.reuse_port and REUSE_PORT_AVAILABLE:
        listener: socket.socket = ReusePortListener(host, port, config.backlog)
    else:
        listener = config.bind_socket()  # one socket shared by all workers
    with contextlib.suppress(KeyboardInterrupt):
        Supervisor(config, [listener], stop_deadline_s(settings)).run()
    listener.close()

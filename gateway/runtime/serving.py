"""How the gateway runs under uvicorn: one set of server options, and a bounded stop.

    server_config(settings, app, host, port, workers)   uvicorn.Config for `gateway serve`,
                                                         `gateway up` and the tests alike
    Supervisor(config, sockets, stop_deadline_s)        uvicorn's worker supervisor whose
                                                         stop cannot hang

Stopping (SIGTERM or Ctrl-C) is bounded at every level:
- a worker stops accepting, lets requests in progress finish for GATEWAY_SHUTDOWN_GRACE_S,
  then cancels what is left (uvicorn's `timeout_graceful_shutdown`; without it uvicorn
  waits for ever for a connection whose request never completes, such as a client that
  never sends the body it announced, and it takes a second SIGTERM as a no-op);
- closing the app's clients gets the same grace (`gateway.app`);
- the supervisor waits for its workers until `stop_deadline_s`, then kills the ones left
  and says so (uvicorn's own joins each worker without a limit).

Slow clients meet the deadlines of `gateway.runtime.deadlines` (headers, body, idle keep-alive).

Behind a proxy, GATEWAY_FORWARDED_ALLOW_IPS names the proxies whose X-Forwarded-For and
X-Forwarded-Proto are believed (uvicorn's forwarded-allow-ips); unset, no header is.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.runtime import http_protocol
from gateway.runtime.deadlines import ServerConfig
from gateway.settings import Settings

logger = logging.getLogger(__name__)

# What stopping may take beyond the drain: closing the app's clients, and process exit.
STOP_MARGIN_S = 5.0


def server_config(
    settings: Settings, app: Any, host: str, port: int, workers: int = 1
) -> uvicorn.Config:
    """uvicorn's options for the gateway; `app` is an ASGI app or an import string."""
    trusted = settings.forwarded_allow_ips
    return ServerConfig(
        app,
        header_timeout_s=settings.header_timeout_s,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        factory=isinstance(app, str),
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=http_protocol.PROTOCOL,
        timeout_keep_alive=max(1, round(settings.keep_alive_s)),
        log_level=settings.log_level.lower(),
        log_config=None,  # the app configures JSON logging itself
        access_log=False,  # the app writes its own access lines
        proxy_headers=trusted is not None,
        forwarded_allow_ips=trusted or None,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )


def stop_deadline_s(settings: Settings) -> float:
    """How long after SIGTERM a worker may still run before it is killed."""
    return 2 * settings.shutdown_grace_s + STOP_MARGIN_S  # drain, then close the clients


class Supervisor(Multiprocess):
    """uvicorn's supervisor (health checks, restarts, SIGHUP) with a deadline on stopping,
    logging each worker that died (how) and its restart (uvicorn's own line goes to a logger
    the gateway does not configure: a crashed worker left no trace)."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], stop_deadline_s: float
    ) -> None:
        super().__init__(config, sockets)
        self.stop_deadline_s = stop_deadline_s
        self.restarts = 0

    def keep_subprocess_alive(self) -> None:
        if not self.should_exit.is_set():
            for worker in self.processes:
                code = worker.process.exitcode
                if code is None:
                    continue  # alive (a hung one is found and restarted by uvicorn)
                self.restarts += 1
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                logger.error(
                    "worker %s died (%s); starting another (restart %d since start)",
                    worker.pid,
                    how,
                    self.restarts,
                )
        super().keep_subprocess_alive()

    def join_all(self) -> None:
        deadline = time.monotonic() + self.stop_deadline_s
        for worker in self.processes:  # joined together: one slow worker delays no other
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self.processes:
            if worker.process.is_alive():
                logger.error(
                    "worker %s did not stop within %.0f s of SIGTERM; killing it",
                    worker.pid,
                    self.stop_deadline_s,
                )
                worker.kill()
                worker.process.join()

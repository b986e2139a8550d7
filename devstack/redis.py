"""Runs Debian's `redis-server` as a child process on a free loopback port.

Its data lives under `<state>/redis/`. With `persistent=True` (what `gateway up` uses) the
append-only file is on, so API keys survive a restart; tests run it without persistence.
`maxmemory-policy volatile-lru` means that under memory pressure Redis evicts only entries
with a TTL (cache entries), never the TTL-less key records.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import redis

from devstack.ports import free_port
from devstack.process import (
    EmbeddedServer,
    EmbeddedServiceError,
    ManagedProcess,
    backend_environment,
)

INSTALL_HINT = (
    "redis-server was not found; install it (Debian/Ubuntu: sudo apt-get install -y "
    "redis-server) or point GATEWAY_REDIS_URL at an existing Redis"
)


class EmbeddedRedis(EmbeddedServer):
    """A redis-server child process bound to loopback."""

    name = "Redis"

    def __init__(
        self,
        state_dir: Path,
        *,
        persistent: bool = True,
        maxmemory: str = "512mb",
        host: str = "127.0.0.1",
        ready_timeout_s: float = 15.0,
        extra_args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.extra_args = list(extra_args)
        self.persistent = persistent
        self.maxmemory = maxmemory
        self.host = host
        self.port = port or free_port(host)
        self.url = f"redis://{host}:{self.port}/0"
        self.ready_timeout_s = ready_timeout_s
        self._process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.state_dir / "redis.log"

    def start(self) -> str:
        executable = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if executable is None:
            raise EmbeddedServiceError(INSTALL_HINT)
        data = self.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            executable,
            "--bind", self.host,
            "--port", str(self.port),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(data),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", "volatile-lru",
            *self.extra_args,
        ]  # fmt: skip
        self._process = ManagedProcess(
            "redis-server", argv, self.log_path, env=backend_environment()
        )
        self._process.start()
        self._process.wait_ready(self.is_ready, self.ready_timeout_s)
        return self.url

    def is_ready(self) -> bool:
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

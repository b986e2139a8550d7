"""A local Redis Cluster (and a Sentinel-watched primary with a replica), from Debian's
`redis-server` and `redis-cli`, on free loopback ports: what the scale-out tests and
`loadtests/` run the gateway against.

    EmbeddedRedisCluster(state, primaries=3)   `redis-server --cluster-enabled yes` on each
                                               port, then `redis-cli --cluster create`;
                                               url: redis+cluster://host:port,...
    EmbeddedSentinel(state)                    a primary, a replica and one Sentinel
                                               (quorum 1, a primary is down after 1 s);
                                               url: redis+sentinel://host:port/primary
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from devstack.ports import free_port, free_port_pair
from devstack.process import EmbeddedServiceError, ManagedProcess, backend_environment
from devstack.redis import EmbeddedRedis

SERVICE = "primary"


class EmbeddedRedisCluster:
    """Several cluster-enabled Redis processes made into one cluster (no replicas)."""

    def __init__(self, state_dir: Path, primaries: int = 3, host: str = "127.0.0.1") -> None:
        self.host = host
        self.nodes = [
            EmbeddedRedis(
                state_dir / f"node-{n}",
                persistent=True,  # a restarted primary keeps its keys (key records among them)
                host=host,
                extra_args=["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
                port=free_port_pair(host),  # and its cluster bus, port + 10000
            )
            for n in range(primaries)
        ]
        self.url = "redis+cluster://" + ",".join(f"{host}:{node.port}" for node in self.nodes)

    def start(self) -> str:
        for node in self.nodes:
            node.start()
        addresses = [f"{self.host}:{node.port}" for node in self.nodes]
        subprocess.run(
            [_tool("redis-cli"), "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        self._wait(lambda: all(_cluster_ok(self.host, node.port) for node in self.nodes))
        return self.url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    @staticmethod
    def _wait(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise EmbeddedServiceError("the Redis Cluster did not become ready")
            time.sleep(0.1)


class EmbeddedSentinel:
    """A primary, its replica and one Sentinel watching them."""

    def __init__(self, state_dir: Path, host: str = "127.0.0.1") -> None:
        self.host = host
        self.state_dir = state_dir.resolve()
        self.primary = EmbeddedRedis(state_dir / "primary", persistent=False, host=host)
        self.replica = EmbeddedRedis(
            state_dir / "replica",
            persistent=False,
            host=host,
            extra_args=["--replicaof", host, str(self.primary.port)],
        )
        self.sentinel_port = free_port(host)
        self.url = f"redis+sentinel://{host}:{self.sentinel_port}/{SERVICE}"
        self._sentinel: ManagedProcess | None = None

    def start(self) -> str:
        self.primary.start()
        self.replica.start()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "sentinel.conf"
        config.write_text(
            f"bind {self.host}\n"
            f"port {self.sentinel_port}\n"
            f"dir {self.state_dir}\n"
            f"sentinel monitor {SERVICE} {self.host} {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        self._sentinel = ManagedProcess(
            "redis-sentinel",
            [_tool("redis-server"), str(config), "--sentinel"],
            self.state_dir / "sentinel.log",
            env=backend_environment(),
        )
        self._sentinel.start()
        self._sentinel.wait_ready(self._sentinel_ready, 30)
        return self.url

    def primary_port(self) -> int | None:
        """The port the Sentinel names as the primary now."""
        client = redis.Redis(host=self.host, port=self.sentinel_port, socket_timeout=0.5)
        try:
            address = client.execute_command(  # type: ignore[no-untyped-call]
                "SENTINEL", "get-master-addr-by-name", SERVICE
            )
        except redis.RedisError:
            return None
        finally:
            client.close()
        return int(address[1]) if address else None

    def stop(self) -> None:
        if self._sentinel is not None:
            self._sentinel.stop()
        self.replica.stop()
        self.primary.stop()

    def _sentinel_ready(self) -> bool:
        client = redis.Redis(host=self.host, port=self.sentinel_port, socket_timeout=0.5)
        try:
            replicas = client.execute_command("SENTINEL", "replicas", SERVICE)  # type: ignore[no-untyped-call]
            return self.primary_port() == self.primary.port and bool(replicas)
        except redis.RedisError:
            return False
        finally:
            client.close()


def _cluster_ok(host: str, port: int) -> bool:
    client = redis.Redis(host=host, port=port, socket_timeout=0.5)
    try:
        info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    except redis.RedisError:
        return False
    finally:
        client.close()
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        raise EmbeddedServiceError(
            f"{name} was not found (Debian/Ubuntu: apt-get install redis-server)"
        )
    return path

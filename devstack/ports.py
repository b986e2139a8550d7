"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import random
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_pair(host: str = "127.0.0.1", offset: int = 10000) -> int:
    """A free port whose port + `offset` is free too (a Redis Cluster node also listens on
    its port + 10000, its cluster bus, which must be a valid port)."""
    for _ in range(200):
        port = random.randint(20000, 65535 - offset)  # noqa: S311 - a port, not a secret
        if _bindable(host, port) and _bindable(host, port + offset):
            return port
    raise OSError("no free pair of ports found")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False

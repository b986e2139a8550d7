"""A listening socket per worker, so the kernel spreads connections across workers.

uvicorn's supervisor binds one socket and shares it with every worker; whichever worker
wakes first accepts, so connections can pile onto one worker. With SO_REUSEPORT, every
worker listens on a socket of its own on the same port and the kernel hashes each
connection to one of them. Measured with `loadtests/investigations/workers_bench.py` (2
workers, 16 wrk connections, 7 runs each): with the shared socket, splits of 15/1 and 16/0
occurred, and
in that 16/0 run two workers served 4,756 req/s, what one worker does; with a socket
each, the worst split was 12/4 and the lowest run served 6,128 req/s.

The supervisor is still uvicorn's (health checks, restarts, SIGHUP): it is handed a
`ReusePortListener`, which reaches each worker, pickled, as a new socket.

Trade-off: connections still waiting in a worker's accept queue when that worker exits are
reset, which matters during a rolling restart (SIGHUP). GATEWAY_REUSE_PORT=false goes back
to the shared socket.
"""

from __future__ import annotations

import socket

REUSE_PORT_AVAILABLE = hasattr(socket, "SO_REUSEPORT")


class ReusePortListener(socket.socket):
    """What the supervisor hands to uvicorn instead of a shared listening socket. Made, it
    checks that nothing else listens on (host, port) and then holds nothing; pickled into a
    worker process, it becomes that worker's own listening socket."""

    def __init__(self, host: str, port: int, backlog: int) -> None:
        super().__init__(_family(host), socket.SOCK_STREAM)
        self.address = (host, port)
        self.backlog = backlog
        with self:  # closed again: each worker binds its own
            _reuse(self)
            self.bind(self.address)  # OSError (address in use) at once, not in every worker

    def __reduce__(self) -> tuple[object, tuple[str, int, int]]:
        return listen, (*self.address, self.backlog)


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """A socket of this process's own, listening on (host, port) beside its siblings."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    _reuse(sock)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def _reuse(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET

"""Per-worker listening sockets (SO_REUSEPORT), on this machine's real kernel."""

from __future__ import annotations

import pickle
import selectors
import socket

import pytest

from devstack.ports import free_port
from gateway.runtime.listeners import REUSE_PORT_AVAILABLE, ReusePortListener

pytestmark = pytest.mark.skipif(not REUSE_PORT_AVAILABLE, reason="no SO_REUSEPORT here")


def test_each_worker_gets_its_own_socket_and_connections_reach_both() -> None:
    port = free_port()
    with ReusePortListener("127.0.0.1", port, 128) as placeholder:
        sent = pickle.dumps(placeholder)  # as uvicorn's supervisor sends it to each worker
        workers = [pickle.loads(sent) for _ in range(2)]  # noqa: S301 (our own bytes)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        accepted = {id(worker): 0 for worker in workers}
        with selectors.DefaultSelector() as selector:
            for worker in workers:
                worker.setblocking(False)
                selector.register(worker, selectors.EVENT_READ)
            while sum(accepted.values()) < len(clients):
                events = selector.select(timeout=5)
                assert events, f"connections lost: {accepted}"
                for ready, _ in events:
                    connection, _ = ready.fileobj.accept()  # type: ignore[union-attr]
                    connection.close()
                    accepted[id(ready.fileobj)] += 1
        for sock in (*workers, *clients):
            sock.close()
    assert min(accepted.values()) >= 8, accepted  # the kernel spreads them (hash of ports)


def test_a_port_that_another_server_has_fails_at_once() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)), pytest.raises(OSError):
        ReusePortListener("127.0.0.1", port, 128)

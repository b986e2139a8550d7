"""What `gateway up` checks before it starts anything, so a refusal costs nothing.

    claim_state_dir(state)   an exclusive lock on <state>/stack.lock, held while the stack
                             runs: a second `gateway up` on the same folder (its Redis
                             append-only file, its stack.json) is refused at once
    check_port_free(h, p)    the gateway's port is not taken by something else

Both raise `StartupRefused` with one line that says what to do. The lock is an flock, so it
goes away with its process however that ends: a killed stack leaves no stale lock.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "stack.lock"


class StartupRefused(Exception):
    """`gateway up` will not start: the state folder or the port is in use."""


@contextmanager
def claim_state_dir(state: Path) -> Iterator[None]:
    path = state / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "?"
            raise StartupRefused(
                f"the state folder {state} is in use by another `gateway up` (pid {holder}); "
                "stop it, or pass another --state-dir"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupRefused(
                f"port {port} on {host} is not available ({exc.strerror}); "
                f"stop what uses it, or pass another {option}"
            ) from None

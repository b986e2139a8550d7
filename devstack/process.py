"""A child server process that never outlives the gateway.

- It runs in its own process group, so stopping it also stops what it spawned (Triton's
  Python backend stubs) and a Ctrl-C in the terminal reaches only us: we stop the
  children ourselves, in order.
- On Linux it gets `PR_SET_PDEATHSIG`: if our process dies without cleaning up (SIGKILL),
  the kernel sends the child SIGTERM.
- `stop()` sends SIGTERM to the group, waits, then SIGKILLs whatever is left.
- Its stdout and stderr go to a log file, whose tail is quoted when it fails to start.
- Backends get `backend_environment()`: none of the gateway's settings, secrets included.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started or did not become ready."""


def backend_environment() -> dict[str, str]:
    """This process's environment without the gateway's own settings (GATEWAY_*, among them
    the key pepper, the cache secret and the admin key once `gateway serve` exported them
    for its workers): a backend needs none of them, and a restarted one must not get them."""
    return {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}


def _die_with_parent() -> None:
    """Runs in the child between fork and exec (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    """One server process with a log file, a readiness check and a clean stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        logger.info("started %s (pid %d), log %s", self.name, self._process.pid, self.log_path)

    def wait_ready(self, is_ready: Callable[[], bool], timeout_s: float) -> None:
        """Poll `is_ready` until it holds; fail early if the process exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                raise EmbeddedServiceError(
                    f"{self.name} exited during start-up; its log ends with:\n{self.log_tail()}"
                )
            if is_ready():
                return
            time.sleep(0.1)
        self.stop()
        raise EmbeddedServiceError(
            f"{self.name} was not ready within {timeout_s:.0f} s; its log ends with:\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM to the process group, then SIGKILL after `stop_timeout_s`."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s ignored SIGTERM for %.0f s; killing it; its log ends with:\n%s",
                    self.name,
                    self.stop_timeout_s,
                    self.log_tail(10),
                )
        # Kill leftovers of the group (e.g. backend stubs) even when the leader exited.
        self._signal_group(process.pid, signal.SIGKILL)
        process.wait()
        logger.info("stopped %s (exit code %s)", self.name, process.returncode)

    def kill(self) -> None:
        """SIGKILL to the whole process group (a hung server ignores SIGTERM)."""
        process = self._process
        if process is None:
            return
        self._signal_group(process.pid, signal.SIGKILL)
        process.wait()
        logger.info("killed %s (exit code %s)", self.name, process.returncode)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    @staticmethod
    def _signal_group(pgid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedServer(ABC):
    """A server the gateway runs as a child process: start, stop, and what the supervisor
    (`devstack.supervisor`) needs to restart it."""

    name: str
    _process: ManagedProcess | None = None

    @abstractmethod
    def start(self) -> object:
        """Start the server and wait until it is ready."""

    @abstractmethod
    def is_ready(self) -> bool: ...

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def healthy(self) -> bool:
        return self.is_ready()

    def restart(self) -> None:
        """Kill what is left of the server (its whole process group), then start it again."""
        if self._process is not None:
            self._process.kill()
        self.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

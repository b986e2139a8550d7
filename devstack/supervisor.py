"""`gateway up` keeps its embedded Triton and Redis running: restarts with backoff.

    BackendSupervisor(backends, report)   a thread of `gateway up`'s own process
      every CHECK_S, for each backend:
        exited?                                  -> restart it
        its health check failed HANG_CHECKS times in a row, 30 s (alive but not
        answering, e.g. hung or SIGSTOPped)?     -> kill it (its whole process group: Triton's
                                                    backend stubs too) and restart it
      restarts wait 1, 2, 4, ... 30 s (the backoff resets after a healthy minute); more than
      GIVE_UP_AFTER restarts within GIVE_UP_WINDOW_S is a crash loop: the supervisor says so
      once, loudly, and stops restarting that backend (the gateway keeps serving what it
      can: cache hits, 503s with Retry-After for the rest)
      every change of state goes to `report` (`gateway up` writes it into stack.json, where
      `/admin/backends` and `gateway_backend_restarts_total` read it)

A restarted Triton listens on the same ports and loads the repository's models again (the
versions its configs name), so the gateway finds it again by itself. A restarted Redis
reads its append-only file, so keys survive.

The thread lives as long as the stack: a child started by a thread gets SIGTERM when that
thread exits (PR_SET_PDEATHSIG), so giving up means sleeping, not returning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from devstack.process import EmbeddedServiceError

logger = logging.getLogger(__name__)

CHECK_S = 2.0
HANG_CHECKS = 15  # 30 s without an answer: a pause shorter than that recovers by itself
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
HEALTHY_RESET_S = 60.0
GIVE_UP_AFTER = 5
GIVE_UP_WINDOW_S = 300.0


class Backend(Protocol):
    """An embedded service as the supervisor sees it."""

    name: str

    def running(self) -> bool: ...

    def healthy(self) -> bool: ...

    def restart(self) -> None: ...


@dataclass
class BackendState:
    name: str
    state: str = "up"  # up | restarting | down (given up)
    restarts: int = 0
    last_reason: str | None = None


class BackendSupervisor:
    """Watches backends and restarts them; see the module docstring."""

    def __init__(
        self,
        backends: Sequence[Backend],
        report: Callable[[list[dict[str, object]]], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self._backends = list(backends)
        self._report = report
        self._clock = clock
        self._states = {backend.name: BackendState(backend.name) for backend in backends}
        self._unanswered = dict.fromkeys(self._states, 0)
        self._restarted_at: dict[str, list[float]] = {name: [] for name in self._states}
        self._stopping = threading.Event()
        self._wait = wait or self._stopping.wait  # True: stopping
        self._thread = threading.Thread(target=self._run, name="backend-supervisor", daemon=True)

    def start(self) -> None:
        self._publish()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(60)

    def states(self) -> list[dict[str, object]]:
        return [asdict(state) for state in self._states.values()]

    def check(self, backend: Backend) -> None:
        """One look at `backend`, restarting it if it needs it."""
        state = self._states[backend.name]
        if state.state == "down":
            return
        if not backend.running():
            self._restart(backend, "it exited")
            return
        if backend.healthy():
            self._unanswered[backend.name] = 0
            return
        self._unanswered[backend.name] += 1
        if self._unanswered[backend.name] >= HANG_CHECKS:
            self._restart(backend, f"it did not answer its health check for {HANG_CHECKS} checks")

    def _run(self) -> None:
        while not self._stopping.wait(CHECK_S):
            for backend in self._backends:
                if self._stopping.is_set():
                    return
                self.check(backend)

    def _restart(self, backend: Backend, reason: str) -> None:
        state = self._states[backend.name]
        now = self._clock()
        recent = [at for at in self._restarted_at[backend.name] if now - at < GIVE_UP_WINDOW_S]
        if len(recent) >= GIVE_UP_AFTER:
            state.state, state.last_reason = "down", reason
            logger.error(
                "%s failed again (%s): %d restarts within %.0f s; giving up on it. The gateway "
                "keeps serving what it can; see its log, fix it, and restart `gateway up`",
                backend.name,
                reason,
                len(recent),
                GIVE_UP_WINDOW_S,
            )
            self._publish()
            return
        healthy_since = now - recent[-1] if recent else None
        if healthy_since is not None and healthy_since > HEALTHY_RESET_S:
            recent = []
        delay = BACKOFF_S[min(len(recent), len(BACKOFF_S) - 1)]
        state.state, state.last_reason = "restarting", reason
        logger.warning("%s: %s; restarting it in %.0f s", backend.name, reason, delay)
        self._publish()
        if self._wait(delay):
            return
        self._restarted_at[backend.name] = [*recent, self._clock()]
        state.restarts += 1
        try:
            backend.restart()
        except EmbeddedServiceError as exc:
            logger.error("%s did not start again: %s", backend.name, exc)
            self._publish()
            return  # still not running: the next check restarts it, with more backoff
        self._unanswered[backend.name] = 0
        state.state = "up"
        logger.info("%s is up again (restart %d)", backend.name, state.restarts)
        self._publish()

    def _publish(self) -> None:
        self._report(self.states())

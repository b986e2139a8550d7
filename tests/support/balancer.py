"""What a load balancer that follows readiness does (a Kubernetes Service, an ingress): each
backend's `/v2/health/ready` probed every `probe_s`, new work spread over the backends whose
last probe answered 200. Used by the rolling-restart tests (gateway processes, containers)."""

from __future__ import annotations

import itertools
import threading
import time

import httpx

PROBE_S = 0.2  # the probe period (Kubernetes: periodSeconds)


def ready(url: str) -> bool:
    """Whether the gateway at `url` says it is ready (no answer: not ready)."""
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


class ReadinessBalancer:
    """Backends by base URL; `pick()` takes turns over the ready ones."""

    def __init__(self, urls: list[str], probe_s: float = PROBE_S) -> None:
        self.urls = urls
        self.ready = dict.fromkeys(urls, False)
        self._probe_s = probe_s
        self._stopped = threading.Event()
        self._turn = itertools.count()
        self._thread = threading.Thread(target=self._probe, name="balancer", daemon=True)
        self._thread.start()

    def _probe(self) -> None:
        while not self._stopped.wait(self._probe_s):
            for url in self.urls:
                self.ready[url] = ready(url)

    def pick(self) -> str:
        """A ready backend, in turn; waits up to 30 s for one."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            candidates = [url for url in self.urls if self.ready[url]]
            if candidates:
                return candidates[next(self._turn) % len(candidates)]
            time.sleep(0.02)
        raise AssertionError("no gateway was ready for 30 s")

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(10)

"""`Endpoint`: one Triton server as the client sees it.

Each has its own connections (`ConnectionPool` for inference, httpx for the rest), its own
breaker (transport failures, or its health probe getting no answer, open it), the calls it
has in flight, what it has READY (from its own repository index, kept by the health probe),
the queue other gateways left at Triton per model (`nv_inference_pending_request_count`,
from its metrics port, less this worker's own calls) and its outlier-ejection state
(`gateway.backends.triton.balancing`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from gateway.backends.triton.connections import DEFAULT_MAX_ANSWER_BYTES, ConnectionPool
from resilience import CircuitBreaker

MAX_CONNECTIONS = 256  # concurrent inference calls kept open to one Triton


@dataclass(frozen=True, slots=True)
class Address:
    """Where one Triton answers: its HTTP URL and, if known, its metrics URL."""

    url: str
    metrics_url: str | None = None

    @classmethod
    def parse(cls, text: str, metrics_port: int) -> Address:
        """`http://host:port[/path]`, optionally `#metrics=PORT` (else `metrics_port`; 0:
        none)."""
        url, _, fragment = text.strip().partition("#")
        port = int(fragment.removeprefix("metrics=")) if fragment else metrics_port
        host = httpx.URL(url).host
        authority = f"[{host}]" if ":" in host else host
        return cls(url.rstrip("/"), f"http://{authority}:{port}/metrics" if port else None)


class Endpoint:
    """One Triton: connections, breaker, calls in flight, ready versions, queue."""

    def __init__(
        self,
        address: Address,
        control_timeout_s: float,
        breaker: CircuitBreaker,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.address = address
        self.url = address.url
        parsed = httpx.URL(address.url)  # plain http://host[:port][/path], checked by Settings
        self.pool = ConnectionPool(
            parsed.host,
            parsed.port or 80,
            max_connections=MAX_CONNECTIONS,
            max_answer_bytes=max_answer_bytes,
        )
        self.prefix = parsed.path.rstrip("/")  # Triton behind a proxy's path, if any
        self.http = httpx.AsyncClient(base_url=address.url, timeout=control_timeout_s)
        self.breaker = breaker
        self.in_flight: set[asyncio.Timeout] = set()  # deadlines of the inference calls
        self.ready_versions: frozenset[tuple[str, str]] | None = None  # None: not known yet
        self.probe_ready = True  # what its last health probe said
        self.pending: dict[str, int] = {}  # Triton's queue per model, others' calls only
        self.ejected_until = 0.0
        self.ejections = 0
        self.failures_in_a_row = 0

    def serves(self, model: str, version: str) -> bool:
        """Whether this Triton has the version READY (any version, when `version` is "");
        an endpoint whose index is not known yet is assumed to."""
        if self.ready_versions is None:
            return True
        if version:
            return (model, version) in self.ready_versions
        return any(name == model for name, _ in self.ready_versions)

    def load(self, model: str) -> int:
        """Outstanding work: this worker's calls in flight plus Triton's queue for `model`
        (which counts every gateway's requests)."""
        return len(self.in_flight) + self.pending.get(model, 0)

    def saw_queue(self, queued: dict[str, int], ours: int) -> None:
        """Keep Triton's queue per model as the other gateways left it: up to `ours` of the
        `queued` requests may be this worker's own calls, which `in_flight` counts live
        already (counted twice, a snapshot that caught one of them would steer every call
        away from this Triton until the next probe)."""
        self.pending = {model: n - ours for model, n in queued.items() if n > ours}

    def cut_calls_short(self) -> None:
        """Make every call in flight fail now, as past its deadline."""
        now = asyncio.get_running_loop().time()
        for deadline in list(self.in_flight):
            deadline.reschedule(now)

    async def close(self) -> None:
        await self.http.aclose()
        self.pool.close()

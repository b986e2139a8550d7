"""`TritonClient`: the gateway's connection to Triton's HTTP/REST API, for the app's lifetime.

Inference uses Triton's binary tensor data extension both ways: the inputs go as raw bytes
after a small JSON header, every output comes back as raw bytes (`binary_data_output`), so
tensors cross in their wire form with no JSON lists either way. It goes over the kept-alive
connections of `ConnectionPool` (connections.py). Health, metadata, config, statistics and
the repository API go through httpx.

Why HTTP, and why not a general client for inference (docs/triton-client.md): Triton 2.51
continues the W3C `traceparent` of every HTTP request, but drops it on about one gRPC call
in ten (measured), so over gRPC one trace in ten would lose Triton's spans; and on the
inference call the pool costs a third to a fifth of aiohttp's CPU (measured), which was
the largest share of a cache miss's overhead.

A Triton that went away and came back is found again without a restart: both clients open
new connections as needed.

Several Tritons (GATEWAY_TRITON_URLS, DNS names: `gateway.backends.triton.discovery`) look like one:
    infer            to a Triton that has the version READY (its own repository index),
                     least outstanding of two at random, a sequence always to the same one
                     (`gateway.backends.triton.balancing`); failed without an answer (refused, or
                     reset before a byte came back, or cut short by its health probe) and
                     not part of a sequence: once more, on another Triton
    control calls    metadata and config from a ready Triton that has the model; the
                     repository index and statistics merged over all (`merging`); model
                     loads and unloads on every Triton (the repository is shared storage)
Each Triton has its own breaker and outlier ejection (`Endpoint`); the health probe
(`gateway.backends.triton.health`) keeps each one's readiness, READY versions and queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import httpx
import orjson
from opentelemetry import trace

from gateway.backends.triton.answers import ExpectedOutputs, UnusableAnswer, check_answer
from gateway.backends.triton.balancing import Outliers, choose, stick
from gateway.backends.triton.codec import decode_response, encode_request
from gateway.backends.triton.connections import (
    DEFAULT_MAX_ANSWER_BYTES,
    NoAnswer,
    RequestNotSent,
    Response,
)
from gateway.backends.triton.control import TritonControl
from gateway.backends.triton.discovery import Discovery
from gateway.backends.triton.endpoint import Address, Endpoint
from gateway.backends.triton.errors import (
    infer_errors,
    raise_for_status,
)
from gateway.backends.triton.merging import pending_requests
from gateway.backends.triton.model_deadlines import ModelDeadlines
from gateway.backends.triton.paths import model_path
from gateway.errors import GatewayError, InferenceTimeout, TritonBusy, TritonUnavailable
from gateway.observability.metrics import Metrics
from gateway.observability.spans import Spans
from gateway.protocol.types import InferRequest, InferResult
from resilience import CircuitBreaker

logger = logging.getLogger(__name__)


class Readiness(Enum):
    READY = "ready"
    NOT_READY = "not ready"  # it answers, e.g. while it (re)loads a model
    NO_ANSWER = "no answer"  # refused, reset or past the deadline: down or hung


class TritonClient:
    """Talks to one or several Tritons over their HTTP/REST API, as to one."""

    def __init__(
        self,
        sources: str | Sequence[str],
        *,
        deadlines: ModelDeadlines,
        control_timeout_s: float,
        retry_after_s: int,
        metrics: Metrics | None = None,
        spans: Spans | None = None,
        breaker_failures: int = 3,
        breaker_reset_s: float = 2.0,
        max_in_flight: int = 0,
        metrics_port: int = 0,
        seed: int | None = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        load_timeout_s: float | None = None,
    ) -> None:
        self._max_answer_bytes = max_answer_bytes
        self._metrics = metrics or Metrics()
        self._spans = spans or Spans()
        self._control_timeout_s = control_timeout_s
        self._breaker_failures = breaker_failures
        self._breaker_reset_s = breaker_reset_s
        self._max_in_flight = max_in_flight
        self._calls = 0  # inference calls of this worker in flight, over every endpoint
        self._retry_after_s = retry_after_s
        self._degraded = False
        self._label: Callable[[str], str] = lambda model: model
        self._rng = random.Random(seed)  # noqa: S311 - load balancing, not security
        self._outliers = Outliers()
        self.deadlines = deadlines
        self.discovery = Discovery([sources] if isinstance(sources, str) else sources, metrics_port)
        self.endpoints: list[Endpoint] = []
        self._update_endpoints(self.discovery.static())
        self.control = TritonControl(
            lambda: self.endpoints, self.discovery.sources, deadlines, retry_after_s, load_timeout_s
        )

    def label_models_with(self, label: Callable[[str], str]) -> None:
        """Metric labels for model names (the catalog's: names a client makes up share one
        label, so they cannot grow /metrics)."""
        self._label = label

    async def discover(self) -> None:
        """Resolve the DNS sources again; Tritons that appeared join, those gone leave."""
        addresses = await self.discovery.resolve()
        if addresses is not None:
            for gone in self._update_endpoints(addresses):
                await gone.close()

    async def close(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.close()

    async def infer(
        self,
        request: InferRequest,
        timeout_s: float | None = None,
        expected: ExpectedOutputs | None = None,
    ) -> InferResult:
        """One inference call, traced as a CLIENT span whose context Triton continues.
        Its deadline is `timeout_s` (the model's configured one) or fitted to the model's
        observed latency (`ModelDeadlines`). The answer is checked (`check_answer`, against
        the model's `expected` outputs when known) before it is returned: an unusable one
        is a 502 and a failure of the Triton that gave it."""
        header, payload = encode_request(request)
        rows = request.inputs[0].shape[0] if request.inputs[0].shape else 1
        deadline_s = self.deadlines.deadline_s(request.model, rows, timeout_s)
        attributes: dict[str, str | int] = {
            "gateway.model": request.model,
            "gateway.model_version": request.version,
            "gateway.batch_size": rows,
            "gateway.bytes_in": len(payload),
            "gateway.deadline_ms": round(deadline_s * 1000),
        }
        with self._spans.start(
            "triton.infer", kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            headers = {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(header)),
                **self._spans.propagation_headers(),
            }
            path = model_path(request.model, request.version) + "/infer"
            started = time.perf_counter()
            try:
                endpoint, response = await self._send(
                    request, path, headers, header + payload, deadline_s
                )
                elapsed = time.perf_counter() - started
                span.set_attribute("gateway.triton_endpoint", endpoint.url)
                raise_for_status(response.status, response.body, self._retry_after_s)
                length = response.headers.get(b"inference-header-content-length")
                try:
                    result = decode_response(request.model, response.body, length, elapsed)
                    check_answer(request, result, expected)
                except UnusableAnswer as exc:
                    self._unusable(endpoint, exc)
                    raise
            except GatewayError as exc:
                self._record_failure(request, exc, exc.status)
                raise
            span.set_attribute("gateway.bytes_out", sum(len(t.data) for t in result.outputs))
        self._metrics.triton_duration.labels(self._label(request.model), result.version).observe(
            elapsed
        )
        self.deadlines.observe(request.model, elapsed, rows)
        self._set_degraded(False)
        return result

    async def _send(
        self,
        request: InferRequest,
        path: str,
        headers: dict[str, str],
        body: bytes,
        deadline_s: float,
    ) -> tuple[Endpoint, Response]:
        """The call to the Triton the balancer picks; once more on another Triton when it
        failed without an answer and is not part of a sequence (see `_Failed`)."""
        if self._max_in_flight and self._calls >= self._max_in_flight:
            raise TritonBusy(
                f"Triton already has {self._max_in_flight} requests of this gateway worker "
                "waiting; retry shortly",
                self._retry_after_s,
            )
        sequence = _sequence_key(request)
        deadline_at = asyncio.get_running_loop().time() + deadline_s
        tried: list[Endpoint] = []
        self._calls += 1
        try:
            while True:
                endpoint = self._pick(request.model, request.version, sequence, tried)
                tried.append(endpoint)
                try:
                    response = await self._attempt(
                        endpoint, request.model, path, headers, body, deadline_at, deadline_s
                    )
                    return endpoint, response
                except _Failed as failed:
                    if not failed.retriable or sequence is not None or len(tried) > 1:
                        raise failed.error from failed.error.__cause__
                    if not self._usable(request.model, request.version, tried):
                        raise failed.error from failed.error.__cause__
                    self._metrics.triton_retries.inc()
        finally:
            self._calls -= 1

    def _usable(self, model: str, version: str, exclude: Sequence[Endpoint]) -> list[Endpoint]:
        """Endpoints a call may go to: not excluded, breaker letting calls through, not
        ejected, and with the version READY (when some endpoint has it at all)."""
        usable = [
            e
            for e in self.endpoints
            if e not in exclude and e.breaker.available and not self._outliers.ejected(e)
        ]
        serving = [e for e in usable if e.serves(model, version)]
        if serving or any(e.serves(model, version) for e in self.endpoints):
            return serving
        return usable  # no Triton has it: one of them answers (404) in its own words

    def _pick(
        self, model: str, version: str, sequence: str | None, exclude: Sequence[Endpoint]
    ) -> Endpoint:
        candidates = self._usable(model, version, exclude)
        if not candidates:
            if not self.endpoints:
                message = f"no Triton found at {', '.join(self.discovery.sources)}"
            else:
                message = "Triton is failing; the gateway holds requests back for a moment"
            raise TritonUnavailable(message, self._retry_after_s)
        if sequence is not None:
            return stick(candidates, sequence)
        return choose(candidates, model, self._rng)

    async def _attempt(
        self,
        endpoint: Endpoint,
        model: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        deadline_at: float,
        deadline_s: float,
    ) -> Response:
        """One call to one Triton, through its breaker: only transport failures (refused,
        reset) count against it; any answer, even an error, is a success. A call past its
        model's deadline is that model's failure (504), not Triton's: one slow model must not
        open the breaker for all (a Triton that stops answering at all is found by its health
        probe, whose `trip` cuts the calls in flight short). Outlier ejection counts
        transport failures, timeouts and 5xx answers."""
        if not endpoint.breaker.allow():  # another call took the half-open trial meanwhile
            error = TritonUnavailable("Triton is failing", self._retry_after_s)
            raise _Failed(error, retriable=True)
        try:
            async with asyncio.timeout_at(deadline_at) as attempt:
                endpoint.in_flight.add(attempt)
                try:
                    with infer_errors(self._retry_after_s):
                        response = await endpoint.pool.post(endpoint.prefix + path, headers, body)
                finally:
                    endpoint.in_flight.discard(attempt)
        except TimeoutError as exc:
            if endpoint.breaker.is_open:  # cut short by `trip`, or a failed half-open trial
                unavailable = TritonUnavailable(
                    "Triton did not answer in time", self._retry_after_s
                )
                unavailable.__cause__ = exc
                self._failed(endpoint, unavailable, "no answer")
                raise _Failed(unavailable, retriable=True) from exc
            endpoint.breaker.abandon_trial()
            self._outliers.failed(endpoint, self.endpoints, "past the deadline")
            raise InferenceTimeout(
                f"Triton did not answer model '{model}' within its {deadline_s:.3g} s deadline",
                self._retry_after_s,
            ) from exc
        except TritonUnavailable as exc:
            self._failed(endpoint, exc, type(exc.__cause__).__name__)
            retriable = isinstance(exc.__cause__, RequestNotSent | NoAnswer)
            raise _Failed(exc, retriable) from exc.__cause__
        except UnusableAnswer as exc:  # an answer over the size limit
            self._unusable(endpoint, exc)
            raise
        except BaseException:
            endpoint.breaker.abandon_trial()
            raise
        endpoint.breaker.record_success()
        if response.status >= 500:
            self._outliers.failed(endpoint, self.endpoints, f"answered {response.status}")
        else:
            self._outliers.succeeded(endpoint)
        self._metrics.triton_endpoint_calls.labels(endpoint.url).inc()
        return response

    def _failed(self, endpoint: Endpoint, error: TritonUnavailable, reason: str) -> None:
        endpoint.breaker.record_failure(error)
        self._outliers.failed(endpoint, self.endpoints, reason)

    def _unusable(self, endpoint: Endpoint, error: UnusableAnswer) -> None:
        """A Triton answered what cannot be an answer: a failure for its breaker and its
        ejection, as a transport failure is."""
        logger.warning("%s: %s", endpoint.url, error.message)
        endpoint.breaker.record_failure(error)
        self._outliers.failed(endpoint, self.endpoints, "unusable answer")

    def describe_endpoints(self) -> list[dict[str, Any]]:
        """Each Triton as this worker sees it (for /admin/backends)."""
        now = time.monotonic()
        return [
            {
                "url": e.url,
                "ready": e.probe_ready,
                "circuit": "open" if e.breaker.is_open else "closed",
                "ejected_for_s": round(max(0.0, e.ejected_until - now), 1),
                "in_flight": len(e.in_flight),
                "queued": sum(e.pending.values()),
                "ready_versions": None
                if e.ready_versions is None
                else sorted(f"{m}/{v}" for m, v in e.ready_versions),
            }
            for e in self.endpoints
        ]

    @property
    def circuit_open(self) -> bool:
        """Every Triton's breaker is open."""
        return all(e.breaker.is_open for e in self.endpoints)

    def trip(self, endpoint: Endpoint, reason: str) -> None:
        """A Triton stopped answering (its health probe says so): open its breaker and cut
        its calls in flight short, each failing as past its deadline (and tried again on
        another Triton), so none holds a slot."""
        endpoint.breaker.trip(f"{endpoint.url}: {reason}")
        endpoint.cut_calls_short()

    def recovered(self, endpoint: Endpoint) -> None:
        """A Triton answers its health probe again: close its breaker."""
        endpoint.breaker.record_success()

    async def readiness(self, endpoint: Endpoint, timeout_s: float) -> Readiness:
        """What a Triton says of its readiness, or that it did not answer (never raises)."""
        try:
            response = await endpoint.http.get("/v2/health/ready", timeout=timeout_s)
        except httpx.HTTPError:
            return Readiness.NO_ANSWER
        return Readiness.READY if response.status_code == 200 else Readiness.NOT_READY

    async def refresh(self, endpoint: Endpoint, timeout_s: float) -> None:
        """What a Triton has READY (its repository index) and its queue (metrics port), for
        routing; left as it was when the Triton does not answer."""
        try:
            response = await endpoint.http.post(
                "/v2/repository/index", json={"ready": True}, timeout=timeout_s
            )
            if response.status_code == 200:
                endpoint.ready_versions = frozenset(
                    (entry["name"], str(entry["version"]))
                    for entry in orjson.loads(response.content)
                    if entry.get("state") == "READY" and "version" in entry
                )
            if endpoint.address.metrics_url and len(self.endpoints) > 1:  # only to choose
                ours = len(endpoint.in_flight)
                metrics = await endpoint.http.get(endpoint.address.metrics_url, timeout=timeout_s)
                ours = max(ours, len(endpoint.in_flight))
                endpoint.saw_queue(pending_requests(metrics.text), ours)
        except (httpx.HTTPError, orjson.JSONDecodeError, KeyError, TypeError):
            return

    def _update_endpoints(self, addresses: Sequence[Address]) -> list[Endpoint]:
        """Make the endpoints those of `addresses`; return the ones that left."""
        known = {e.address: e for e in self.endpoints}
        gone = [e for address, e in known.items() if address not in addresses]
        for endpoint in gone:
            logger.info("Triton %s left the endpoints", endpoint.url)
        self.endpoints = [known.get(a) or self._endpoint(a) for a in dict.fromkeys(addresses)]
        self._update_circuit_gauge()
        return gone

    def _endpoint(self, address: Address) -> Endpoint:
        if self.endpoints or len(self.discovery.sources) > 1:
            logger.info("Triton %s joined the endpoints", address.url)
        breaker = CircuitBreaker(
            f"Triton {address.url}",
            failure_threshold=self._breaker_failures,
            reset_after_s=self._breaker_reset_s,
            on_change=lambda _: self._update_circuit_gauge(),
        )
        return Endpoint(address, self._control_timeout_s, breaker, self._max_answer_bytes)

    def _update_circuit_gauge(self) -> None:
        self._metrics.degraded.labels("triton_circuit").set(1 if self.circuit_open else 0)

    def _record_failure(self, request: InferRequest, error: GatewayError, status: int) -> None:
        self._metrics.triton_errors.labels(self._label(request.model), str(status)).inc()
        if isinstance(error, TritonUnavailable) and not isinstance(error, InferenceTimeout):
            self._set_degraded(True)

    def _set_degraded(self, degraded: bool) -> None:
        if degraded != self._degraded:
            self._degraded = degraded
            self._metrics.degraded.labels("triton").set(1 if degraded else 0)
            if degraded:
                logger.warning("Triton is unavailable; inference requests get 503")
            else:
                logger.info("Triton is available again")


class _Failed(Exception):
    """An attempt failed with `error`; `retriable`: Triton did not answer, so the call may
    go once to another Triton (not for sequences, whose state lives in one Triton)."""

    def __init__(self, error: TritonUnavailable, retriable: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.retriable = retriable


def _sequence_key(request: InferRequest) -> str | None:
    """The correlation id of a sequence request (its requests stick to one Triton)."""
    sequence = request.parameters.get("sequence_id")
    return None if sequence in (None, 0, "") else f"{request.model}\0{sequence}"

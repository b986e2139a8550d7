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
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from enum import Enum
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from opentelemetry import trace

from auth import CircuitBreaker
from gateway.errors import GatewayError, InferenceTimeout, TritonBusy, TritonUnavailable
from gateway.metrics import Metrics
from gateway.observability.tracing import Spans, traceparent_metadata
from gateway.protocol.names import check_model_path
from gateway.protocol.types import InferRequest, InferResult, Tensor
from gateway.triton.connections import ConnectionPool, Response
from gateway.triton.errors import (
    http_errors,
    infer_errors,
    raise_for_http_status,
    raise_for_status,
)
from gateway.triton.model_deadlines import ModelDeadlines

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 256  # concurrent inference calls kept open to Triton


class Readiness(Enum):
    READY = "ready"
    NOT_READY = "not ready"  # it answers, e.g. while it (re)loads a model
    NO_ANSWER = "no answer"  # refused, reset or past the deadline: down or hung


class TritonClient:
    """Talks to one Triton over its HTTP/REST API."""

    def __init__(
        self,
        url: str,
        *,
        deadlines: ModelDeadlines,
        control_timeout_s: float,
        retry_after_s: int,
        metrics: Metrics | None = None,
        spans: Spans | None = None,
        breaker: CircuitBreaker | None = None,
        max_in_flight: int = 0,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._breaker = breaker or CircuitBreaker("Triton")
        self._in_flight: set[asyncio.Timeout] = set()  # deadlines of the calls in flight
        self._max_in_flight = max_in_flight
        self._spans = spans or Spans()
        address = httpx.URL(url)  # plain http://host[:port][/path], checked by Settings
        self._pool = ConnectionPool(
            address.host, address.port or 80, max_connections=MAX_CONNECTIONS
        )
        self._prefix = address.path.rstrip("/")  # Triton behind a proxy's path, if any
        self._http = httpx.AsyncClient(base_url=url, timeout=control_timeout_s)
        self.deadlines = deadlines
        self._retry_after_s = retry_after_s
        self._degraded = False
        self._label: Callable[[str], str] = lambda model: model

    def label_models_with(self, label: Callable[[str], str]) -> None:
        """Metric labels for model names (the catalog's: names a client makes up share one
        label, so they cannot grow /metrics)."""
        self._label = label

    async def close(self) -> None:
        await self._http.aclose()
        self._pool.close()

    async def infer(self, request: InferRequest, timeout_s: float | None = None) -> InferResult:
        """One inference call, traced as a CLIENT span whose context Triton continues.
        Its deadline is `timeout_s` (the model's configured one) or fitted to the model's
        observed latency (`ModelDeadlines`)."""
        header, payload = _encode_request(request)
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
                **(dict(traceparent_metadata()) if self._spans.enabled else {}),
            }
            path = self._prefix + _model_path(request.model, request.version) + "/infer"
            started = time.perf_counter()
            try:
                response = await self._post(
                    request.model, path, headers, header + payload, deadline_s
                )
                raise_for_status(response.status, response.body, self._retry_after_s)
                length = response.headers.get(b"inference-header-content-length")
                result = _decode_response(request.model, response.body, length)
            except GatewayError as exc:
                self._record_failure(request, exc, exc.status)
                raise
            span.set_attribute("gateway.bytes_out", sum(len(t.data) for t in result.outputs))
        elapsed = time.perf_counter() - started
        self._metrics.triton_duration.labels(self._label(request.model), result.version).observe(
            elapsed
        )
        self.deadlines.observe(request.model, elapsed, rows)
        self._set_degraded(False)
        return result

    async def _post(
        self, model: str, path: str, headers: dict[str, str], body: bytes, deadline_s: float
    ) -> Response:
        """One inference call through the breaker: only transport failures (refused, reset)
        count against Triton; any answer, even an error, is a success. A call past its
        model's deadline is that model's failure (504), not Triton's: one slow model must not
        open the breaker for all (a Triton that stops answering at all is found by its health
        probe, whose `trip` cuts the calls in flight short)."""
        if self._max_in_flight and len(self._in_flight) >= self._max_in_flight:
            raise TritonBusy(
                f"Triton already has {self._max_in_flight} requests of this gateway worker "
                "waiting; retry shortly",
                self._retry_after_s,
            )
        if not self._breaker.allow():
            raise TritonUnavailable(
                "Triton is failing; the gateway holds requests back for a moment",
                self._retry_after_s,
            )
        try:
            async with asyncio.timeout(deadline_s) as deadline:
                self._in_flight.add(deadline)
                try:
                    with infer_errors(self._retry_after_s):
                        response = await self._pool.post(path, headers, body)
                finally:
                    self._in_flight.discard(deadline)
        except TimeoutError as exc:
            if self._breaker.is_open:  # cut short by `trip`, or a failed half-open trial
                unavailable = TritonUnavailable(
                    "Triton did not answer in time", self._retry_after_s
                )
                self._breaker.record_failure(unavailable)
                raise unavailable from exc
            self._breaker.abandon_trial()
            raise InferenceTimeout(
                f"Triton did not answer model '{model}' within its {deadline_s:.3g} s deadline",
                self._retry_after_s,
            ) from exc
        except TritonUnavailable as exc:
            self._breaker.record_failure(exc)
            raise
        except BaseException:
            self._breaker.abandon_trial()
            raise
        self._breaker.record_success()
        return response

    @property
    def circuit_open(self) -> bool:
        return self._breaker.is_open

    def trip(self, reason: str) -> None:
        """Triton stopped answering (its health probe says so): open the breaker and cut the
        calls in flight short, each failing as past its deadline, so none holds a slot."""
        self._breaker.trip(reason)
        now = asyncio.get_running_loop().time()
        for deadline in list(self._in_flight):
            deadline.reschedule(now)

    def recovered(self) -> None:
        """Triton answers its health probe again: close the breaker."""
        self._breaker.record_success()

    async def readiness(self, timeout_s: float) -> Readiness:
        """What Triton says of its readiness, or that it did not answer (never raises)."""
        try:
            response = await self._http.get("/v2/health/ready", timeout=timeout_s)
        except httpx.HTTPError:
            return Readiness.NO_ANSWER
        return Readiness.READY if response.status_code == 200 else Readiness.NOT_READY

    async def server_metadata(self) -> dict[str, Any]:
        return await self._get_json("/v2")

    async def model_metadata(self, model: str, version: str = "") -> dict[str, Any]:
        return await self._get_json(_model_path(model, version))

    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        return await self._get_json(_model_path(model, version) + "/config")

    async def is_model_ready(self, model: str, version: str = "") -> bool:
        with http_errors(self._retry_after_s):
            response = await self._http.get(_model_path(model, version) + "/ready")
        return response.status_code == 200

    async def repository_index(self) -> list[dict[str, Any]]:
        """Every model version Triton knows of, with its state (READY, UNAVAILABLE, ...)."""
        index: list[dict[str, Any]] = await self._json("POST", "/v2/repository/index", {})
        return index

    async def model_statistics(self, model: str = "", version: str = "") -> list[dict[str, Any]]:
        """Per loaded version (of every model, or of `model`): inference and execution
        counts, which restart on a reload, and queue and compute times."""
        path = _model_path(model, version) + "/stats" if model else "/v2/models/stats"
        document: dict[str, Any] = await self._json("GET", path)
        stats: list[dict[str, Any]] = document.get("model_stats", [])
        return stats

    async def load_model(self, model: str) -> None:
        """(Re)load a model in explicit model-control mode; Triton rereads changed files."""
        await self._json("POST", f"/v2/repository/models/{_segment(model)}/load", {}, load=True)

    async def unload_model(self, model: str) -> None:
        await self._json("POST", f"/v2/repository/models/{_segment(model)}/unload", {}, load=True)

    async def _get_json(self, path: str) -> dict[str, Any]:
        document: dict[str, Any] = await self._json("GET", path)
        return document

    async def _json(self, method: str, path: str, body: Any = None, load: bool = False) -> Any:
        # Loading a model can take much longer than a metadata call.
        timeout = self.deadlines.ceiling_s if load else httpx.USE_CLIENT_DEFAULT
        with http_errors(self._retry_after_s):
            response = await self._http.request(method, path, json=body, timeout=timeout)
        raise_for_http_status(response, self._retry_after_s)
        return orjson.loads(response.content) if response.content else None

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


def _model_path(model: str, version: str) -> str:
    check_model_path(model, version)  # nothing Triton cannot have reaches it
    path = f"/v2/models/{_segment(model)}"
    return f"{path}/versions/{_segment(version)}" if version else path


def _segment(value: str) -> str:
    return quote(value, safe="")


def _encode_request(request: InferRequest) -> tuple[bytes, bytes]:
    """Triton's binary tensor data extension: a JSON header, then the raw input bytes."""
    inputs = [
        {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
            "parameters": {"binary_data_size": len(tensor.data)},
        }
        for tensor in request.inputs
    ]
    document: dict[str, Any] = {}
    if request.id is not None:
        document["id"] = request.id
    document["inputs"] = inputs
    if request.outputs:
        document["outputs"] = [
            {
                "name": output.name,
                "parameters": {"binary_data": True}
                | ({"classification": output.class_count} if output.class_count else {}),
            }
            for output in request.outputs
        ]
    document["parameters"] = {**request.parameters, "binary_data_output": True}
    return orjson.dumps(document), b"".join(tensor.data for tensor in request.inputs)


def _decode_response(model: str, body: bytes, header_length: bytes | None) -> InferResult:
    try:
        length = int(header_length) if header_length is not None else len(body)
        document = orjson.loads(body[:length])
        outputs = []
        offset = length
        for output in document.get("outputs", []):
            size = int(output.get("parameters", {}).get("binary_data_size", -1))
            if size < 0 or offset + size > len(body):
                raise ValueError(f"output {output.get('name')!r} has no binary data")
            data = body[offset : offset + size]
            offset += size
            # Interned: the same few names in every cached result, not a copy in each.
            name, datatype = sys.intern(output["name"]), sys.intern(output["datatype"])
            outputs.append(Tensor(name, datatype, tuple(output["shape"]), data))
        return InferResult(
            document.get("model_name", model), str(document["model_version"]), tuple(outputs)
        )
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise GatewayError(f"Triton's response could not be read: {exc}") from exc

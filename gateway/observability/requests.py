"""`RequestObserver`: the outermost ASGI middleware, one access line and metrics per request.

Handlers fill in the request's `RequestInfo` (found in the ASGI scope under
`SCOPE_KEY`): the route template, and for inference the model, version, cache outcome and
the key id (never the key). When the request finishes the observer records:

- `gateway_http_requests_total` / `gateway_http_request_duration_seconds` by route;
- for inference, `gateway_inference_requests_total` / `_duration_seconds` by model,
  version, status and cache outcome, with the trace id as an exemplar;
- one JSON access line (when GATEWAY_ACCESS_LOG is on), written by `AccessLog`
  (access_log.py).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.access_log import AccessLog
from gateway.observability.metrics import Metrics

SCOPE_KEY = "gateway.request"
UNMATCHED = "unmatched"  # route label of requests no route took (bounded cardinality)


@dataclass(slots=True)
class RequestInfo:
    """What handlers learn about a request, for its access line and metrics."""

    route: str = UNMATCHED
    model: str | None = None
    version: str | None = None
    cache: str | None = None
    key_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None

    def fields(self) -> dict[str, str]:
        """What is known of the request, for its access line."""
        known = (
            ("model", self.model),
            ("version", self.version),
            ("cache", self.cache),
            ("key_id", self.key_id),
            ("trace_id", self.trace_id),
            ("span_id", self.span_id),
        )
        return {name: value for name, value in known if value is not None}


def request_info(scope: Scope) -> RequestInfo:
    """The request's info, created on first use (also outside the observer, e.g. tests)."""
    info: RequestInfo | None = scope.get(SCOPE_KEY)
    if info is None:
        info = scope[SCOPE_KEY] = RequestInfo()
    return info


# The client address of the request being served (each request runs in a task of its own,
# with its own copy of the context): set by the fronts, read by `Access`'s throttle.
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("gateway_client_address", default=None)


class RequestObserver:
    """Times every HTTP request and records it once it is answered."""

    def __init__(self, app: ASGIApp, access_log: AccessLog | None = None) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        info = scope[SCOPE_KEY] = RequestInfo()
        client = scope.get("client")
        CLIENT_ADDRESS.set(client[0] if client else None)
        status = 500  # what the client sees if the app fails before answering

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            elapsed = time.perf_counter() - started
            services = scope.get("state", {}).get("services")
            if services is not None:
                self._record(services.metrics, scope, info, status, elapsed)

    def _record(
        self, metrics: Metrics, scope: Scope, info: RequestInfo, status: int, elapsed: float
    ) -> None:
        method = scope["method"]
        route = _route(scope, info)
        metrics.http_requests.labels(route, method, str(status)).inc()
        metrics.http_duration.labels(route, method).observe(elapsed)
        if info.model is not None:
            version = info.version or ""
            cache = info.cache or "none"
            code = str(status)
            exemplar = metrics.exemplar(info.trace_id, (info.model, version, code, cache))
            metrics.inference_requests.labels(info.model, version, code, cache, "http").inc(
                exemplar=exemplar
            )
            metrics.inference_duration.labels(info.model, version, cache).observe(
                elapsed, exemplar=exemplar
            )
        if self.access_log is not None:
            self.access_log.write(_access_fields(scope, info, route, status, elapsed))


def _route(scope: Scope, info: RequestInfo) -> str:
    if info.route != UNMATCHED:
        return info.route
    matched = scope.get("route")  # set by Starlette's router for FastAPI routes
    path = getattr(matched, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _access_fields(
    scope: Scope, info: RequestInfo, route: str, status: int, elapsed: float
) -> dict[str, object]:
    client = scope.get("client")
    fields: dict[str, object] = {
        "event": "access",
        "method": scope["method"],
        "path": scope["path"],
        "route": route,
        "status": status,
        "duration_ms": round(elapsed * 1000, 3),
        "client": client[0] if client else None,
    }
    fields.update(info.fields())
    return fields

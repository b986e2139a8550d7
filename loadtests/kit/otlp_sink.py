"""OTLP/HTTP trace endpoints on a free loopback port, for benchmarks and tests.

- `OtlpSink` answers every export and keeps nothing but counts: a collector that costs
  nothing, for measuring what tracing costs the gateway itself.
- `OtlpReceiver` decodes what it is sent and keeps every span (service name, ids, parent,
  attributes, duration). It accepts protobuf (what the Python SDK's exporter sends) and
  JSON (what Triton's OpenTelemetry exporter sends; ids are hex strings there).
"""

from __future__ import annotations

import base64
import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class _Endpoint:
    """Answers every POST with 200 after handing its body to `_receive`."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with endpoint._lock:
                    endpoint.requests += 1
                    endpoint.bytes += len(body)
                endpoint._receive(body, self.headers)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"  # OTEL_EXPORTER_OTLP_ENDPOINT
        self.url = f"{self.endpoint}/v1/traces"  # the traces URL itself
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _receive(self, body: bytes, headers: Message) -> None:
        pass

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class OtlpSink(_Endpoint):
    """Counts the exports (`requests`) and their bytes, and discards them."""


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    duration_ms: float


class OtlpReceiver(_Endpoint):
    """Keeps every span posted to `url`, decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[ReceivedSpan] = []

    def _receive(self, body: bytes, headers: Message) -> None:
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        json = "json" in headers.get("Content-Type", "")
        spans = _from_json(body) if json else _from_protobuf(body)
        with self._lock:
            self.spans.extend(spans)

    def received(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 30.0
    ) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            snapshot = self.received()
            if predicate(snapshot):
                return snapshot
            time.sleep(0.1)
        got = [
            (s.service, s.name, s.trace_id[:8], s.span_id[:8], s.parent_span_id[:8])
            for s in self.received()
        ]
        raise AssertionError(f"spans did not arrive; got {got}")


def _from_protobuf(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource in request.resource_spans:
        service = next(
            (a.value.string_value for a in resource.resource.attributes if a.key == "service.name"),
            "",
        )
        for scope in resource.scope_spans:
            for span in scope.spans:
                spans.append(
                    ReceivedSpan(
                        service,
                        span.name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        {a.key: _value(a.value) for a in span.attributes},
                        (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
                    )
                )
    return spans


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _hex(identifier: str) -> str:
    """OTLP/JSON ids are hex; tolerate base64 (the protobuf JSON mapping) too."""
    if all(c in "0123456789abcdefABCDEF" for c in identifier):
        return identifier.lower()
    return base64.b64decode(identifier).hex()


def _from_json(body: bytes) -> list[ReceivedSpan]:
    document = orjson.loads(body)
    spans = []
    for resource in document.get("resourceSpans", []):
        attributes = resource.get("resource", {}).get("attributes", [])
        service = next(
            (a["value"].get("stringValue", "") for a in attributes if a["key"] == "service.name"),
            "",
        )
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                elapsed = int(span.get("endTimeUnixNano", 0)) - int(
                    span.get("startTimeUnixNano", 0)
                )
                spans.append(
                    ReceivedSpan(
                        service,
                        span["name"],
                        _hex(span["traceId"]),
                        _hex(span["spanId"]),
                        _hex(span.get("parentSpanId", "")),
                        {a["key"]: a.get("value") for a in span.get("attributes", [])},
                        elapsed / 1e6,
                    )
                )
    return spans

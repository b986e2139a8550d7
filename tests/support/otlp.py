"""A real OTLP/HTTP trace receiver for tests: a listener that decodes what it is sent.

It accepts `POST /v1/traces` as protobuf (what the Python SDK's exporter sends) or JSON
(what Triton's OpenTelemetry exporter sends; ids are hex strings there) and keeps every
span with its service name, ids and parent.
"""

from __future__ import annotations

import base64
import gzip
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]


class OtlpReceiver:
    """Collects spans posted to http://127.0.0.1:<port>/v1/traces."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                spans = (
                    _from_json(body)
                    if "json" in self.headers.get("Content-Type", "")
                    else _from_protobuf(body)
                )
                with receiver._lock:
                    receiver.spans.extend(spans)
                    receiver.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate: Any, timeout_s: float = 30.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                snapshot = list(self.spans)
            if predicate(snapshot):
                return snapshot
            time.sleep(0.1)
        got = [
            (s.service, s.name, s.trace_id[:8], s.span_id[:8], s.parent_span_id[:8])
            for s in self.spans
        ]
        raise AssertionError(f"spans did not arrive; got {got}")


def _from_protobuf(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource in request.resource_spans:
        service = next(
            (a.value.string_value for a in resource.resource.attributes if a.key == "service.name"),
            "",
        )
        for scope in resource.scope_spans:
            for span in scope.spans:
                attributes = {a.key: _value(a.value) for a in span.attributes}
                spans.append(
                    ReceivedSpan(
                        service,
                        span.name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        attributes,
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
                spans.append(
                    ReceivedSpan(
                        service,
                        span["name"],
                        _hex(span["traceId"]),
                        _hex(span["spanId"]),
                        _hex(span.get("parentSpanId", "")),
                        {a["key"]: a.get("value") for a in span.get("attributes", [])},
                    )
                )
    return spans

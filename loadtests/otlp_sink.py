"""An OTLP/HTTP endpoint that accepts spans: a collector that costs nothing, for benchmarks
that measure what tracing costs the gateway itself, or (`keep_durations=True`) one that
records how long each span took, to show where a request's time goes."""

from __future__ import annotations

import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_DETAILS = ("gateway.cache.tier", "gateway.cache.entry")  # attributes that tell spans apart


def _label(span: Span) -> str:
    """The span's name, and the cache tier and entry where it has them."""
    details = [a.value.string_value for a in span.attributes if a.key in _DETAILS]
    return f"{span.name} ({', '.join(details)})" if details else span.name


class OtlpSink:
    """Answers every POST with 200 and counts the requests and bytes it was sent."""

    def __init__(self, keep_durations: bool = False) -> None:
        self.requests = 0
        self.bytes = 0
        self.durations_ms: dict[str, list[float]] = defaultdict(list)  # by _label(span)
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with sink._lock:
                    sink.requests += 1
                    sink.bytes += length
                    if keep_durations:
                        sink._record(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def clear(self) -> None:
        with self._lock:
            self.durations_ms.clear()

    def _record(self, body: bytes) -> None:
        export = ExportTraceServiceRequest.FromString(body)
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    elapsed = span.end_time_unix_nano - span.start_time_unix_nano
                    self.durations_ms[_label(span)].append(elapsed / 1e6)

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

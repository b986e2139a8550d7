"""An OTLP/HTTP span exporter with JSON bodies (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json`,
the gateway's default).

Why not the SDK's exporters: with tracing on, the export thread holds the GIL while it
encodes, and that time is taken from requests. Measured per span on the development
machine: the SDK's protobuf encoding 30 us, OpenTelemetry's own JSON exporter 39 us, this
encoding (plain dicts, serialized by orjson in C) 4 us. Every OTLP receiver accepts JSON
(the OpenTelemetry Collector, Jaeger, Tempo; Triton itself exports JSON).

The encoding is OTLP's JSON mapping of `ExportTraceServiceRequest`: ids as hex, enums as
integers, 64-bit integers as strings. Endpoint, headers, timeout and compression come from
the same `OTEL_EXPORTER_OTLP_[TRACES_]*` variables as the SDK's exporter. A failed export
is not retried (the batch is reported failed and counted; the next batch is sent as usual),
so a dead collector never holds the export thread beyond one timeout.
"""

from __future__ import annotations

import base64
import gzip
import os
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.re import parse_env_headers

from gateway.observability.light_spans import LightSpan

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
DEFAULT_TIMEOUT_S = 10.0
# OTLP's numbers (an enum's `.value` is a slow property): SPAN_KIND_UNSPECIFIED is 0.
_KINDS = {kind: kind.value + 1 for kind in SpanKind}
_STATUS_CODES = {code: code.value for code in StatusCode}


class OtlpJsonSpanExporter(SpanExporter):
    """POSTs batches of spans as OTLP/JSON to one endpoint."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        compression: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._compression = compression if compression in ("gzip",) else None
        self._headers = {**(headers or {}), "Content-Type": "application/json"}
        if self._compression:
            self._headers["Content-Encoding"] = self._compression
        self._client = httpx.Client(timeout=timeout_s)

    @classmethod
    def from_environment(cls) -> OtlpJsonSpanExporter:
        return cls(
            endpoint=traces_endpoint() or DEFAULT_ENDPOINT,
            headers=parse_env_headers(_variable("HEADERS") or "", liberal=True),
            timeout_s=float(_variable("TIMEOUT") or DEFAULT_TIMEOUT_S * 1000) / 1000,
            compression=(_variable("COMPRESSION") or "").strip().lower() or None,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = orjson.dumps(encode_spans(spans))
        if self._compression == "gzip":
            body = gzip.compress(body, compresslevel=1)
        try:
            response = self._client.post(self.endpoint, content=body, headers=self._headers)
        except httpx.HTTPError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if response.is_success else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here: the batch processor holds the spans


def encode_spans(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An `ExportTraceServiceRequest` in OTLP/JSON: spans grouped by resource and scope."""
    groups: dict[tuple[int, int], tuple[Any, Any, list[dict[str, Any]]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        group = groups.get((id(resource), id(scope)))
        if group is None:
            group = groups[id(resource), id(scope)] = (resource, scope, [])
        group[2].append(_span(span))
    resources: dict[int, tuple[Any, dict[tuple[str, str], list[dict[str, Any]]]]] = {}
    for resource, scope, encoded in groups.values():
        _, scopes = resources.setdefault(id(resource), (resource, {}))
        name = (scope.name, scope.version or "") if scope is not None else ("", "")
        scopes.setdefault(name, []).extend(encoded)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.attributes)},
                "scopeSpans": [
                    {"scope": {"name": name, "version": version}, "spans": encoded}
                    for (name, version), encoded in scopes.items()
                ],
            }
            for resource, scopes in resources.values()
        ]
    }


def _span(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    status = span.status
    encoded: dict[str, Any] = {
        "traceId": context.trace_id.to_bytes(16, "big").hex() if context else "",
        "spanId": context.span_id.to_bytes(8, "big").hex() if context else "",
        "name": span.name,
        "kind": _KINDS[span.kind],
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": _attributes(span.attributes),
        "status": {"code": _STATUS_CODES[status.status_code]},
    }
    if span.parent is not None:
        encoded["parentSpanId"] = span.parent.span_id.to_bytes(8, "big").hex()
    if context is not None and context.trace_state:
        encoded["traceState"] = context.trace_state.to_header()
    if status.description:
        encoded["status"]["message"] = status.description
    events = span.events
    if events:
        encoded["events"] = [
            {
                "timeUnixNano": str(event.timestamp),
                "name": event.name,
                "attributes": _attributes(event.attributes),
            }
            for event in events
        ]
    links = span.links
    if links:
        encoded["links"] = [
            {
                "traceId": format(link.context.trace_id, "032x"),
                "spanId": format(link.context.span_id, "016x"),
                "attributes": _attributes(link.attributes),
            }
            for link in links
        ]
    if isinstance(span, LightSpan):
        return encoded  # it drops nothing (light_spans.py)
    for name, count in (
        ("droppedAttributesCount", span.dropped_attributes),
        ("droppedEventsCount", span.dropped_events),
        ("droppedLinksCount", span.dropped_links),
    ):
        if count:
            encoded[name] = count
    return encoded


# Encoded attributes by (key, value, type of value), and whole attribute sets by their items:
# a request's attributes repeat (method, model, key id, cache outcome, status), and encoding
# each anew was half of a span's encoding time. The value's type is part of the key:
# True == 1 == 1.0, but each is encoded differently. Both are emptied when they reach
# _ENCODED_MAX entries (attribute sets a client can vary, e.g. made-up model names, cannot
# grow them).
_ENCODED: dict[tuple[str, Any, type], dict[str, Any]] = {}
_ENCODED_SETS: dict[tuple[tuple[tuple[str, Any], ...], tuple[type, ...]], list[dict[str, Any]]] = {}
_ENCODED_MAX = 4096


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not attributes:
        return []
    items = tuple(attributes.items())
    typed = (items, tuple(map(type, attributes.values())))
    try:
        encoded = _ENCODED_SETS.get(typed)
    except TypeError:  # an unhashable value (a list)
        return [_attribute((key, value, type(value))) for key, value in items]
    if encoded is None:
        if len(_ENCODED_SETS) >= _ENCODED_MAX:
            _ENCODED_SETS.clear()
        encoded = [_attribute((key, value, type(value))) for key, value in items]
        _ENCODED_SETS[typed] = encoded
    return encoded


def _attribute(typed: tuple[str, Any, type]) -> dict[str, Any]:
    try:
        entry = _ENCODED.get(typed)
    except TypeError:  # an unhashable value (a list)
        return {"key": typed[0], "value": _value(typed[1])}
    if entry is None:
        if len(_ENCODED) >= _ENCODED_MAX:
            _ENCODED.clear()
        entry = _ENCODED[typed] = {"key": typed[0], "value": _value(typed[1])}
    return entry


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):  # before int: a bool is an int
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    return {"stringValue": str(value)}


def _variable(name: str) -> str | None:
    return os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or os.environ.get(
        f"OTEL_EXPORTER_OTLP_{name}"
    )


def traces_endpoint() -> str | None:
    """The OTLP/HTTP traces URL the OTEL_* variables configure, if any."""
    explicit = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if explicit:
        return explicit
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else None

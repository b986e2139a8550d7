"""Structured logs: one JSON object per line, with the trace and span ids of the request.

    {"time": "2026-11-22T10:00:00.123Z", "level": "INFO", "logger": "gateway.access",
     "message": "POST /v2/models/m/infer 200", "trace_id": "...", "span_id": "...", ...}

Extra fields passed with `logger.info(..., extra={"fields": {...}})` are merged in. Nothing
here ever logs a request's headers or body, so keys and tensors stay out of the logs.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace


class JsonFormatter(logging.Formatter):
    """Formats a record as a single JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            document["trace_id"] = format(context.trace_id, "032x")
            document["span_id"] = format(context.span_id, "016x")
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            document.update(fields)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


def configure_logging(level: str) -> None:
    """JSON lines on stderr for every logger, uvicorn's included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The gateway writes its own access lines (gateway.access); uvicorn's would repeat them.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)

"""Traces (OpenTelemetry), logs (JSON lines) and request metrics of the gateway.

    tracing.py   a TracerProvider configured from the standard OTEL_* variables, an exporter
                 that never slows requests, and the traceparent handed on to Triton
    logs.py      structured JSON log lines carrying trace and span ids
    requests.py  one access line and the request metrics per HTTP request

Metric definitions live in `gateway.observability.metrics`.
"""

"""Tracing is configured from OTEL_* variables, and off (a no-op) without them."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from gateway.metrics import Metrics
from gateway.observability.tracing import (
    get_tracer,
    otlp_traces_url,
    tracer_provider_from_environment,
    triton_trace_arguments,
)
from gateway.settings import Settings
from gateway.stack import _embedded_triton_tracing


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_off_without_an_endpoint_or_console() -> None:
    assert tracer_provider_from_environment(Metrics()) is None
    assert not get_tracer(None).start_span("x").is_recording()


def test_console_and_otlp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = tracer_provider_from_environment(Metrics())
    assert isinstance(provider, TracerProvider)
    provider.shutdown()
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    provider = tracer_provider_from_environment(Metrics())
    assert isinstance(provider, TracerProvider)
    assert get_tracer(provider).start_span("x").is_recording()
    provider.shutdown()
    assert otlp_traces_url() == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracer_provider_from_environment(Metrics()) is None


def test_triton_gets_host_port_path_and_its_own_service_name() -> None:
    arguments = triton_trace_arguments("http://127.0.0.1:4318/v1/traces")
    assert "--trace-config=opentelemetry,url=127.0.0.1:4318/v1/traces" in arguments
    assert "--trace-config=mode=opentelemetry" in arguments
    assert "--trace-config=opentelemetry,resource=service.name=triton" in arguments


def test_the_embedded_triton_traces_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Triton 2.51 crashes with tracing under load (Triton issue 7795): off by default."""
    assert _embedded_triton_tracing(Settings()) == []  # no collector: nothing to decide
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert _embedded_triton_tracing(Settings()) == []
    assert "Triton issue 7795" in caplog.text
    asked = _embedded_triton_tracing(Settings(triton_tracing=True))
    assert asked == triton_trace_arguments("http://127.0.0.1:4318/v1/traces")

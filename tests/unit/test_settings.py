"""Settings: environment variables, and production refusing unsafe defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import Settings


def test_reads_gateway_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TRITON_URL", "http://triton:8000")
    monkeypatch.setenv("GATEWAY_MAX_BODY_BYTES", "1024")
    settings = Settings()
    assert settings.triton_url == "http://triton:8000"
    assert settings.max_body_bytes == 1024


def test_production_needs_external_services() -> None:
    with pytest.raises(ValidationError, match=r"GATEWAY_TRITON_URL.*GATEWAY_REDIS_URL"):
        Settings(environment="production", triton_grpc_url="triton:8001")


def test_production_with_services_is_accepted() -> None:
    settings = Settings(
        environment="production",
        triton_url="http://triton:8000",
        triton_grpc_url="triton:8001",
        redis_url="redis://redis:6379/0",
    )
    assert settings.environment == "production"


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings(max_body_bytes=0)
